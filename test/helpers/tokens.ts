// Signed test tokens (jose), the way an identity service would mint them for hubcast.
import { type KeyObject } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';

export const TEST_SECRET = 'integration-secret-at-least-32-characters';

/** An HS256 token; expires in an hour unless the claims say otherwise. */
export function hs256(claims: JWTPayload, secret: string = TEST_SECRET): Promise<string> {
  return sign(new TextEncoder().encode(secret), 'HS256', claims);
}

export function sign(key: Uint8Array | KeyObject, alg: string, claims: JWTPayload): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg });
  if (claims.exp === undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + 3600);
  return jwt.sign(key);
}

/** Seconds since the epoch, as `exp` wants them. */
export const nowSec = (): number => Math.floor(Date.now() / 1000);
