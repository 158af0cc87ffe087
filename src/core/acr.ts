// Authentication context classes (OIDC Core §2 `acr`) and methods (RFC 8176 `amr`). There is one
// way to log in today, a password: the ID token says `acr: urn:latchkey:acr:pwd` and
// `amr: ["pwd"]`. Multi-factor login will add a stronger class.
export const ACR_PASSWORD = 'urn:latchkey:acr:pwd';
export const SUPPORTED_ACR_VALUES = [ACR_PASSWORD];
export const AMR_PASSWORD = ['pwd'];
