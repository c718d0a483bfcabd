'use strict';
// Store sports-brand (Nuxt): overrides the base Nuxt header.
module.exports = { text: 'Sports Brand', from: 'apps/stores/sports-brand/storefront-unified-nuxt/components/header.js' };
