'use strict';
// Store eu: EU legal footer; header comes from fashion-brand, locale from the base app.
module.exports = {
  text: 'Fashion Brand EU B.V. · Prices include VAT · 14-day right of withdrawal (EU Directive 2011/83/EU)',
  from: 'apps/stores/fashion-brand/stores/eu/storefront-unified-nextjs/components/footer.js',
};
