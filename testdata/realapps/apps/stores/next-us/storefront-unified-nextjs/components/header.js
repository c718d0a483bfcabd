export default function Header() {
  return <header><h1>Next store US</h1></header>;
}
