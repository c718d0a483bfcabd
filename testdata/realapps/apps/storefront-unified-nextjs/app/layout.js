import Header from '../components/header';

export const metadata = { title: 'Storefront' };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>
        <Header />
        {children}
      </body>
    </html>
  );
}
