export { FluxBootstrapCard } from './FluxBootstrapCard';
export { StateChip } from './ClusterRow';
