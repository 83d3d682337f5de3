export * from './bootstrapFleet';
