// bench/ is not a workspace package: lint it with the rules of a Node library package.
module.exports =
  require('@backstage/cli/config/eslint-factory').createConfigForRole(
    __dirname,
    'node-library',
  );
