'use strict';
// Base header. A store overrides it with apps/stores/<store>/storefront-unified-nextjs/components/header.js.
module.exports = { text: 'Acme Storefront', from: 'apps/storefront-unified-nextjs/components/header.js' };
