export default function Home() {
  return (
    <main>
      <p>Welcome to the storefront.</p>
      <img src="/logo.svg" alt="logo" width="32" height="32" />
    </main>
  );
}
