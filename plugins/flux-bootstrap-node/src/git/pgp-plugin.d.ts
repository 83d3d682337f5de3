declare module '@isomorphic-git/pgp-plugin' {
  export const pgp: {
    sign(args: {
      payload: string;
      secretKey: string;
    }): Promise<{ signature: string }>;
    verify(args: {
      payload: string;
      publicKey: string;
      signature: string;
    }): Promise<{ valid: string[]; invalid: string[] }>;
  };
}
