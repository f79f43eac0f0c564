// proxy-from-env 2 ships no types: its one function, as its README documents it.
declare module "proxy-from-env" {
  /** The proxy URL for `url` from HTTP_PROXY / HTTPS_PROXY / ALL_PROXY (any case), or "" when NO_PROXY excludes it or none is set. */
  export function getProxyForUrl(url: string | URL): string;
}
