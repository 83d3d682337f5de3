// @ts-check

/**
 * Short leases that let one backend replica at a time read a cluster's Flux status; the others
 * wait for its result in the shared cache (src/status/readLeases.ts).
 * @param {import('knex').Knex} knex
 */
exports.up = async function up(knex) {
  await knex.schema.createTable('flux_bootstrap_status_read_leases', table => {
    table.comment('Which replica is reading the status of which cluster');
    table.string('cluster', 255).primary().notNullable();
    table.string('holder', 64).notNullable();
    table
      .bigInteger('expires_at')
      .notNullable()
      .comment(
        'Milliseconds since the epoch; an expired lease may be taken over',
      );
  });
};

/**
 * @param {import('knex').Knex} knex
 */
exports.down = async function down(knex) {
  await knex.schema.dropTable('flux_bootstrap_status_read_leases');
};
