export {
  HttpClient,
  HttpError,
  parseRetryAfter,
  type HttpClientOptions,
  type HttpErrorKind,
  type HttpRequest,
  type HttpResponse,
} from './client';
export {
  configureHttpProxy,
  readHttpProxyConfig,
  withSystemRoots,
  type HttpProxySettings,
  type HttpTls,
} from './dispatchers';
