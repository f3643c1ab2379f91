-- The device page's "Sign in with Google" (OpenID Connect, response_mode=form_post): each link the
-- page renders carries a fresh random `nonce`, which Google copies into the ID token it posts back
-- to /device/google. The nonce is stored here only as its SHA-256, bound to the device code it was
-- issued for, and spent by the approve/deny post: an ID token minted for another request (another
-- nonce, none, or one already spent) is refused.
CREATE TABLE device_google_nonces (
  nonce_hash      TEXT PRIMARY KEY,
  device_code_id  TEXT NOT NULL REFERENCES device_codes(id) ON DELETE CASCADE,
  created_at      TEXT NOT NULL,
  expires_at      TEXT NOT NULL
);
CREATE INDEX device_google_nonces_expiry ON device_google_nonces(expires_at);
CREATE INDEX device_google_nonces_device ON device_google_nonces(device_code_id);
