// Who is logged in. The access token lives only in memory. The refresh token is kept in
// sessionStorage: it survives a reload of this tab (so a call can be rejoined) but is not shared
// with other tabs and is gone when the tab closes; nothing else is stored. Tokens are refreshed
// a minute before the access token expires.

const REFRESH_KEY = 'confab.refresh_token';
const EARLY_MS = 60_000;

class Session {
  constructor() {
    this.accessToken = null;
    this.user = null;
    this.expiresAt = 0;
    this.refreshing = null;
    this.listeners = new Set();
  }

  get loggedIn() { return Boolean(this.accessToken || sessionStorage.getItem(REFRESH_KEY)); }

  /** Takes a token response from login or refresh. */
  accept(tokens) {
    this.accessToken = tokens.access_token;
    this.user = tokens.user;
    this.expiresAt = Date.now() + tokens.expires_in * 1000;
    sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
    this.changed();
  }

  /** Makes sure the access token is valid for at least a minute more, if we have a session. */
  async fresh() {
    if (this.accessToken && Date.now() < this.expiresAt - EARLY_MS) return true;
    return this.refresh();
  }

  /** Exchanges the refresh token for new tokens; false when there is no session any more. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  async doRefresh() {
    const refreshToken = sessionStorage.getItem(REFRESH_KEY);
    if (!refreshToken) return false;
    try {
      const response = await fetch('/v1/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      if (!response.ok) {
        if (response.status === 401 || response.status === 400) this.clear();
        return false;
      }
      this.accept(await response.json());
      return true;
    } catch {
      return false;
    }
  }

  clear() {
    this.accessToken = null;
    this.user = null;
    this.expiresAt = 0;
    sessionStorage.removeItem(REFRESH_KEY);
    this.changed();
  }

  onChange(listener) { this.listeners.add(listener); }

  changed() { for (const listener of this.listeners) listener(this); }
}

export const session = new Session();
