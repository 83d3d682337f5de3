export { startFaultProxy } from './faultProxy';
export type {
  FaultProxy,
  FaultProxyFault,
  FaultProxyOptions,
  FaultProxyOutage,
  FaultProxyRequest,
} from './faultProxy';
export { startTinyproxy, TINYPROXY_BINARY } from './tinyproxy';
export type {
  Tinyproxy,
  TinyproxyOptions,
  TinyproxyRequest,
} from './tinyproxy';
