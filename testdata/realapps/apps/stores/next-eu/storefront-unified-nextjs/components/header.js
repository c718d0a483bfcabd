export default function Header() {
  return <header><h1>Next store EU</h1></header>;
}
