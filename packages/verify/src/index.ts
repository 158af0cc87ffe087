// @latchkey/verify: verify Latchkey access tokens at a resource server.
export { createVerifier, type AccessTokenClaims, type StatusReference, type Verifier, type VerifierOptions, type VerifyOptions } from './verifier.js';
export {
  VerifyError,
  InvalidToken,
  InvalidRequest,
  InsufficientScope,
  InvalidDpopProof,
  DEFAULT_DPOP_ALGORITHMS,
  type BearerErrorCode,
  type VerifyErrorCode,
  type VerifyReason,
  type DpopProofReason,
  type Challenge,
} from './errors.js';
export { type DpopRequest, type ReplayStore } from './dpop.js';
export { bearerToken, accessToken, fastifyVerifier, latchkeyAuth, expressVerifier, type Credentials, type GuardOptions, type LatchkeyAuthOptions, type MiddlewareRequest, type PublicUrl } from './http.js';
export { decodeStatusList, statusAt, STATUS_VALID, STATUS_INVALID, STATUS_SUSPENDED, type StatusList, type StatusBits, type LogEntry, type LogFn } from './status-list.js';
