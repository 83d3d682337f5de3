export * from './httpClient';
export * from './transport';
export * from './ssh';
export * from './tree';
export * from './session';
export * from './pushFluxManifests';
export { pushFluxManifestsOrPullRequest } from './pullRequestMode';
export type {
  PullRequestInput,
  PushFluxManifestsOrPullRequestResult,
} from './pullRequestMode';
