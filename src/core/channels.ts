// Every LISTEN/NOTIFY channel and every denylist key, in one place: the writers (store/) and the
// readers (caches, the denylist view, the status lists, delivery, the keystore) name them from here.

/** A denylist row was written (a revocation): the denylist view and the status lists re-read. */
export const DENYLIST_CHANNEL = 'latchkey_denylist';
/** A login session ended or changed. */
export const SESSIONS_CHANNEL = 'latchkey_sessions';
/** A client was created, changed or deleted. */
export const CLIENTS_CHANNEL = 'latchkey_clients';
/** A user was changed (password, disabled) or deleted. */
export const USERS_CHANNEL = 'latchkey_users';
/** Back-channel logout notices are due. */
export const LOGOUT_NOTICES_CHANNEL = 'latchkey_logout_notices';
/** The signing keys changed (rotation, revocation, import). */
export const KEYS_CHANNEL = 'latchkey_keys';

/**
 * How long past its token's `exp` a denylist entry is kept (written, loaded, pruned): tokens are
 * accepted until `exp` + CLOCK_LEEWAY_SECONDS, so an entry must outlive that. It is the largest
 * leeway the configuration admits, so replicas configured with different leeways agree.
 */
export const DENYLIST_RETENTION_SECONDS = 300;

/**
 * The denylist key of a revoked family. Access tokens carry their family in the `fid` claim, and
 * a token whose jti or family key is on the denylist is refused. A jti is base64url, so it never
 * contains the colon.
 */
export const familyDenyKey = (familyId: string): string => `family:${familyId}`;

/**
 * Every token that carries this status index (a client_credentials client's tokens share one until
 * it moves on): listed until the longest-lived of them has expired, refused by our endpoints as the
 * status list refuses it at resource servers.
 */
export const statusDenyKey = (statusIdx: string | number): string => `status:${statusIdx}`;
