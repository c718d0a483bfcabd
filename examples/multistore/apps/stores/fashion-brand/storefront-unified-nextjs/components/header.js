'use strict';
// Template store fashion-brand: its header wins over the base one for us and eu.
module.exports = { text: 'Fashion Brand', from: 'apps/stores/fashion-brand/storefront-unified-nextjs/components/header.js' };
