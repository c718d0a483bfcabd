'use strict';
// Base header. A store overrides it with apps/stores/<store>/storefront-unified-nuxt/components/header.js.
module.exports = { text: 'Acme Storefront (Nuxt)', from: 'apps/storefront-unified-nuxt/components/header.js' };
