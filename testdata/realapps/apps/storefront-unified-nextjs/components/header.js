export default function Header() {
  return <header><h1>Base storefront</h1></header>;
}
