// The little of node-oidc-provider's API the bench uses (the package ships no types).
declare module 'oidc-provider' {
  import type { Server } from 'node:http';

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    listen(port: number, host: string): Server;
    on(event: string, listener: (...args: never[]) => void): this;
    static errors: { InvalidTarget: new (description?: string) => Error };
  }
}
