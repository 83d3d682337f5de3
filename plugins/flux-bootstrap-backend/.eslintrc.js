module.exports = require('@backstage/cli/config/eslint-factory')(__dirname, {
  // The tests import the repository's test ground (@flux-bootstrap/test-peers, private, in
  // test/peers), which is deliberately not a devDependency: a copied plugin folder must install.
  testRules: { '@backstage/no-undeclared-imports': 'off' },
});
