import { NextResponse } from 'next/server';

// A small middleware, as real storefronts have: it tags every answer.
export function middleware() {
  const res = NextResponse.next();
  res.headers.set('x-storefront', 'next');
  return res;
}
