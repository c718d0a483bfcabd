package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/slipway-dev/slipway/internal/proxy/proxybench"
)

// benchHost is the name all three proxies serve; clients send it as SNI
// and Host, and dial the proxy's loopback address directly.
const benchHost = "bench.test"

// certs is the shared certificate: one CA, one ECDSA P-256 leaf for benchHost.
type certs struct {
	dir                    string
	caPEM, certPEM, keyPEM []byte
	pool                   *x509.CertPool
}

func makeCerts(dir string) (*certs, error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench/tls CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: benchHost}, DNSNames: []string{benchHost},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leafT, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	c := &certs{dir: dir,
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
		pool:    x509.NewCertPool()}
	c.pool.AddCert(ca)
	for name, b := range map[string][]byte{"cert.pem": c.certPEM, "key.pem": c.keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *certs) certFile() string { return filepath.Join(c.dir, "cert.pem") }
func (c *certs) keyFile() string  { return filepath.Join(c.dir, "key.pem") }

// peer is a proxy process under test.
type peer struct {
	name string
	addr string
	stop func()
}

// startNginx runs nginx with TLS in front of backend.
func startNginx(bin, dir string, c *certs, backend string) (*peer, error) {
	listen, err := proxybench.FreePort()
	if err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	conf := fmt.Sprintf(`%sworker_processes %d;
pid %[3]s/nginx.pid;
error_log %[3]s/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[3]s/client_body;
  proxy_temp_path %[3]s/proxy;
  fastcgi_temp_path %[3]s/fastcgi;
  uwsgi_temp_path %[3]s/uwsgi;
  scgi_temp_path %[3]s/scgi;
  keepalive_timeout 65s;
  keepalive_requests 100000;
  upstream app { server %[4]s max_fails=0; keepalive 256; keepalive_requests 100000; }
  server {
    listen %[5]s ssl http2;
    server_name %[6]s;
    ssl_certificate %[7]s;
    ssl_certificate_key %[8]s;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`, user, runtime.NumCPU(), dir, backend, listen, benchHost, c.certFile(), c.keyFile())
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-t", "-q", "-c", path).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v: %s", err, out)
	}
	cmd := exec.Command(bin, "-c", path, "-g", "daemon off;")
	cmd.Stderr = os.Stderr
	return startProc("nginx", cmd, listen)
}

// startCaddy runs Caddy with TLS (the same certificate, automatic HTTPS
// off) in front of backend.
func startCaddy(bin, dir string, c *certs, backend string) (*peer, error) {
	listen, err := proxybench.FreePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(listen)
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
	storage file_system %s/caddy-data
}
https://%s:%s {
	bind 127.0.0.1
	tls %s %s
	reverse_proxy %s
}
`, dir, benchHost, port, c.certFile(), c.keyFile(), backend)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	logf, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	return startProc("caddy", cmd, listen)
}

// startProc starts cmd and waits for it to accept on addr.
func startProc(name string, cmd *exec.Cmd, addr string) (*peer, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return &peer{name: name, addr: addr, stop: stop}, nil
		}
		select {
		case <-done:
			return nil, fmt.Errorf("%s exited at start", name)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("%s not listening on %s after 20s", name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// caddyPin is the Caddy release the README says to build.
const caddyPin = "v2.11.9"

// caddyVersion asks the binary.
func caddyVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(out))
	if len(f) == 0 || f[0] == "unknown" { // go install leaves no version stamp
		return caddyPin + " (go install)"
	}
	return f[0]
}
