'use strict';
module.exports = { text: 'API for the Acme storefronts', from: 'apps/storefront-middleware/components/footer.js' };
