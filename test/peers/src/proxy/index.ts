export { startFaultProxy } from './faultProxy';
export type {
  FaultProxy,
  FaultProxyFault,
  FaultProxyOptions,
  FaultProxyOutage,
  FaultProxyRequest,
} from './faultProxy';
