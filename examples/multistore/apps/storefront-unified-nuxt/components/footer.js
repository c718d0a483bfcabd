'use strict';
// Base footer. A store overrides it with apps/stores/<store>/storefront-unified-nuxt/components/footer.js.
module.exports = { text: '© Acme Shops', from: 'apps/storefront-unified-nuxt/components/footer.js' };
