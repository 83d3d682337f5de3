export { assertFleetReady, bootstrapFleet } from './bootstrapFleet';
export type {
  FleetBootstrapDeps,
  FleetBootstrapRequest,
  FleetBootstrapResult,
  FleetClusterResult,
} from './bootstrapFleet';
