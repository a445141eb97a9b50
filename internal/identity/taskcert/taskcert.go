// Package taskcert issues a task's target certificates. SSL_CONFIG makes
// one self-signed certificate per task (the task certificate, a CA: it may
// sign); the agent-facing certkey answer also carries distinct pairs for
// the target's management and data planes, as the SDK's
// ShowCertKeyResponse declares them. Each pair is issued by the task
// certificate, and its key is derived from the task key and the pair's
// role (HKDF-SHA256): no more secrets to store, the same key at every
// read, and a pair of one task or role says nothing of another's.
package taskcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"time"
)

// Role names a target pair.
type Role string

// The target's pairs.
const (
	Management Role = "target-mgmt"
	Data       Role = "target-data"
)

// New makes the task certificate and its key: ECDSA P-256, self-signed,
// valid for a year, for loopback and the names the receiver may answer on.
// It may sign (Issue).
func New(cn string) (certPEM, keyPEM string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"smsflow"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost", cn}, IsCA: true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), nil
}

// Issue makes the role's pair under the task certificate caPEM and its key
// caKeyPEM: a certificate for the same names as the task's, valid as long
// as it, signed by it.
func Issue(caPEM, caKeyPEM string, role Role) (certPEM, keyPEM string, err error) {
	ca, caKey, err := parse(caPEM, caKeyPEM)
	if err != nil {
		return "", "", err
	}
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return "", "", errors.New("taskcert: the task certificate cannot sign")
	}
	k, err := derive(caKey, role)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: ca.Subject.CommonName + "-" + string(role), Organization: ca.Subject.Organization},
		NotBefore:    ca.NotBefore, NotAfter: ca.NotAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    ca.DNSNames, IPAddresses: append([]net.IP(nil), ca.IPAddresses...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		return "", "", fmt.Errorf("taskcert: issue %s: %w", role, err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), nil
}

func parse(caPEM, caKeyPEM string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode([]byte(caPEM))
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("taskcert: the task certificate is not PEM")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("taskcert: task certificate: %w", err)
	}
	kb, _ := pem.Decode([]byte(caKeyPEM))
	if kb == nil {
		return nil, nil, errors.New("taskcert: the task key is not PEM")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("taskcert: task key: %w", err)
	}
	return ca, key, nil
}

// derive is the role's P-256 key: HKDF-SHA256 of the task key's scalar,
// labelled with the role; a scalar out of range (odds about 2^-32) takes
// the next label.
func derive(caKey *ecdsa.PrivateKey, role Role) (*ecdsa.PrivateKey, error) {
	secret, err := caKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("taskcert: task key: %w", err)
	}
	for i := range 8 {
		b, err := hkdf.Key(sha256.New, secret, nil, "smsflow task "+string(role)+" "+strconv.Itoa(i), 32)
		if err != nil {
			return nil, err
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("taskcert: no key derived")
}

// Verify checks that certPEM was issued by the task certificate caPEM
// (the chain an agent that enables the CA verifies) at time at.
func Verify(caPEM, certPEM string, at time.Time) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return errors.New("taskcert: the task certificate is not PEM")
	}
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil {
		return errors.New("taskcert: the certificate is not PEM")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return err
	}
	_, err = c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}
