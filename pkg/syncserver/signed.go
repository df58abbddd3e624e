package syncserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MinSigningKeyBytes is the shortest HMAC key SignedTokens accepts.
const MinSigningKeyBytes = 32

// signedTokenPrefix starts every signed token; it names the format version.
const signedTokenPrefix = "opfs1."

// maxSignedTokenBytes bounds what Authenticate looks at: a token this
// package issues is at most about 420 bytes (a MaxUserIDBytes user id).
const maxSignedTokenBytes = 1024

var tokenB64 = base64.RawURLEncoding.Strict()

// SignedTokens issues and checks signed, expiring bearer tokens, so that an
// app's backend can hand its users short-lived tokens without telling the
// sync server about each one. It implements Authenticator; combine it with
// static Tokens through AnyOf.
//
// A token is the text
//
//	opfs1.<user>.<expiry>.<signature>
//
// where <user> is the user id in unpadded base64url, <expiry> the expiry
// time in decimal Unix seconds, and <signature> the unpadded base64url
// HMAC-SHA256, under Key, of everything before its dot
// ("opfs1.<user>.<expiry>"). Anyone holding Key can mint tokens for any
// user: keep it as secret as a password database.
//
// The zero value has no key and fails every call; set Key (or use
// NewSignedTokens). A SignedTokens is safe for concurrent use as long as
// Key and Now are not changed.
type SignedTokens struct {
	// Key is the HMAC-SHA256 key, at least MinSigningKeyBytes bytes of
	// secret, random data.
	Key []byte

	// Now is the clock expiries are checked against. Nil uses time.Now.
	Now func() time.Time
}

// NewSignedTokens returns a SignedTokens with a copy of key, or an error
// when key is shorter than MinSigningKeyBytes.
func NewSignedTokens(key []byte) (*SignedTokens, error) {
	s := &SignedTokens{Key: append([]byte(nil), key...)}
	if err := s.checkKey(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *SignedTokens) checkKey() error {
	if len(s.Key) < MinSigningKeyBytes {
		return fmt.Errorf("signing key is %d bytes, it must be at least %d (e.g. openssl rand -hex 32)", len(s.Key), MinSigningKeyBytes)
	}
	return nil
}

func (s *SignedTokens) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Issue returns a token for user that Authenticate accepts until expires
// (rounded down to the second). It fails when the key is too short, when
// user is not a valid user id (the rule of Tokens.Validate) or when expires
// is not at least a second after Now.
func (s *SignedTokens) Issue(user string, expires time.Time) (string, error) {
	if err := s.checkKey(); err != nil {
		return "", err
	}
	if err := validateUserID(user); err != nil {
		return "", err
	}
	exp := expires.Unix()
	if now := s.now(); !time.Unix(exp, 0).After(now) {
		return "", fmt.Errorf("expiry %s is not after now (%s)", expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	signed := signedTokenPrefix + tokenB64.EncodeToString([]byte(user)) + "." + strconv.FormatInt(exp, 10)
	return signed + "." + tokenB64.EncodeToString(s.sign(signed)), nil
}

func (s *SignedTokens) sign(text string) []byte {
	m := hmac.New(sha256.New, s.Key)
	m.Write([]byte(text))
	return m.Sum(nil)
}

// Authenticate implements Authenticator. It returns the token's user when
// the signature is right (checked in constant time, before anything else
// of the token is believed) and the expiry is after Now;
// ErrTokenExpired when the signature is right but the expiry has passed;
// ok=false for any other text (another format, a wrong signature, a
// garbled or tampered token). It fails only when Key is too short.
func (s *SignedTokens) Authenticate(_ context.Context, token string) (string, bool, error) {
	if err := s.checkKey(); err != nil {
		return "", false, err
	}
	if len(token) > maxSignedTokenBytes || !strings.HasPrefix(token, signedTokenPrefix) {
		return "", false, nil
	}
	dot := strings.LastIndexByte(token, '.')
	signed, sig := token[:dot], token[dot+1:]
	mac, err := tokenB64.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, s.sign(signed)) {
		return "", false, nil
	}
	user, exp, err := parseSigned(signed)
	if err != nil {
		return "", false, nil // signed with our key, but not by Issue
	}
	if !s.now().Before(time.Unix(exp, 0)) {
		return "", false, ErrTokenExpired
	}
	return user, true, nil
}

// parseSigned reads "opfs1.<user>.<expiry>".
func parseSigned(signed string) (string, int64, error) {
	parts := strings.Split(strings.TrimPrefix(signed, signedTokenPrefix), ".")
	if len(parts) != 2 {
		return "", 0, errors.New("not two parts")
	}
	user, err := tokenB64.DecodeString(parts[0])
	if err != nil {
		return "", 0, err
	}
	if err := validateUserID(string(user)); err != nil {
		return "", 0, err
	}
	exp, err := parseDecimal(parts[1])
	if err != nil {
		return "", 0, err
	}
	return string(user), exp, nil
}
