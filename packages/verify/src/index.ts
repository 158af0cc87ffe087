// @latchkey/verify: verify Latchkey access tokens at a resource server.
export { createVerifier, type AccessTokenClaims, type StatusReference, type Verifier, type VerifierOptions, type VerifyOptions } from './verifier.js';
export { VerifyError, InvalidToken, InvalidRequest, InsufficientScope, type BearerErrorCode, type VerifyReason } from './errors.js';
export { bearerToken, fastifyVerifier, latchkeyAuth, expressVerifier, type GuardOptions, type LatchkeyAuthOptions, type MiddlewareRequest } from './http.js';
export { decodeStatusList, statusAt, STATUS_VALID, STATUS_INVALID, STATUS_SUSPENDED, type StatusList, type StatusBits, type LogEntry, type LogFn } from './status-list.js';
