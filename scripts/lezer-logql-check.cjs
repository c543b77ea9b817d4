// Parses each LogQL query of stdin (one per line; blank lines and `#` comments skipped) with
// Grafana's own grammar, @grafana/lezer-logql (installed by scripts/test.sh setup into
// $TOOLS/lezer-logql; its directory in LEZER_LOGQL_DIR). Prints the queries with a syntax error
// and their offset; exits 1 if there is one. Used by tests/tests/loki.rs.
const dir = process.env.LEZER_LOGQL_DIR;
const { parser } = require(`${dir}/node_modules/@grafana/lezer-logql`);
const lines = require('fs')
  .readFileSync(0, 'utf8')
  .split('\n')
  .filter((l) => l.trim() && !l.startsWith('#'));
let bad = 0;
for (const q of lines) {
  let at = null;
  parser.parse(q).iterate({
    enter: (n) => {
      if (n.type.isError && at === null) at = n.from;
    },
  });
  if (at !== null) {
    bad++;
    console.log(`syntax error at offset ${at}: ${q}`);
  }
}
console.log(`${lines.length - bad}/${lines.length} queries parse with @grafana/lezer-logql`);
process.exit(bad ? 1 : 0);
