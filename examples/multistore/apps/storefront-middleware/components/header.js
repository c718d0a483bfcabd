'use strict';
// Banner of the middleware's status page. Stores may override it like any other file.
module.exports = { text: 'Acme Storefront Middleware', from: 'apps/storefront-middleware/components/header.js' };
