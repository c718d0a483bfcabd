package proxybench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// NginxPath returns the nginx binary, or "" when it is not installed.
func NginxPath() string {
	for _, p := range []string{"nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	return ""
}

// NginxVersion returns "nginx/1.x.y" or "".
func NginxVersion(bin string) string {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(out))
	if _, v, ok := strings.Cut(s, "version: "); ok {
		return v
	}
	return s
}

// Nginx is an nginx master run in the foreground with its own config in a
// temporary directory; it never touches the system service.
type Nginx struct {
	Addr   string
	dir    string
	conf   string
	listen string
	cmd    *exec.Cmd
	done   chan struct{}
}

// NginxConf is a realistic reverse-proxy config: one worker per core,
// HTTP/1.1 to the upstream with a keep-alive pool, the usual forwarded
// headers, no access log (Slipway keeps none either).
func NginxConf(dir, listen string, upstreams []string) string {
	var ups strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&ups, "    server %s max_fails=0;\n", u)
	}
	user := ""
	if os.Geteuid() == 0 {
		// Workers as root can write the temp directory created by us.
		user = "user root;\n"
	}
	return fmt.Sprintf(`%sworker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events {
  worker_connections 8192;
}
http {
  access_log off;
  client_body_temp_path %s/client_body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  keepalive_timeout 65s;
  keepalive_requests 100000;
  upstream app {
%s    keepalive 256;
    keepalive_requests 100000;
  }
  server {
    listen %s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
    }
  }
}
`, user, runtime.NumCPU(), dir, dir, dir, dir, dir, dir, dir, ups.String(), listen)
}

// StartNginx writes the config for upstreams in dir and starts nginx
// listening on a free loopback port.
func StartNginx(bin, dir string, upstreams []string) (*Nginx, error) {
	return startNginx(bin, dir, func(n *Nginx) error { return n.write(upstreams) })
}

func (n *Nginx) write(upstreams []string) error {
	tmp := n.conf + ".tmp"
	if err := os.WriteFile(tmp, []byte(NginxConf(n.dir, n.listen, upstreams)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, n.conf)
}

// Switch rewrites the upstream list and reloads nginx (SIGHUP to the master,
// what `nginx -s reload` sends). Like `nginx -s reload`, it returns once the
// signal is sent; the master then starts new workers and lets the old ones
// finish their requests.
func (n *Nginx) Switch(upstreams []string) error {
	if err := n.write(upstreams); err != nil {
		return err
	}
	return n.cmd.Process.Signal(syscall.SIGHUP)
}

// Stop shuts nginx down (SIGQUIT: graceful), killing it after 5s.
func (n *Nginx) Stop() {
	n.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(2 * time.Second):
			n.cmd.Process.Kill()
			<-n.done
		}
	}
}

// nginxHead is the common top of the static and cache configs.
func nginxHead(dir string) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n"
	}
	return fmt.Sprintf(`%sworker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events {
  worker_connections 8192;
}
`, user, runtime.NumCPU(), dir, dir)
}

func nginxTemps(dir string) string {
	return fmt.Sprintf(`  access_log off;
  client_body_temp_path %s/client_body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  keepalive_timeout 65s;
  keepalive_requests 100000;
  include /etc/nginx/mime.types;
  sendfile on;
  tcp_nopush on;
`, dir, dir, dir, dir, dir)
}

// NginxStaticConf serves root with nginx's usual static file settings.
func NginxStaticConf(dir, listen, root string) string {
	return nginxHead(dir) + "http {\n" + nginxTemps(dir) + fmt.Sprintf(`  open_file_cache max=10000 inactive=60s;
  server {
    listen %s;
    root %s;
    location / {
      try_files $uri $uri.html $uri/index.html =404;
    }
    location /_next/static/ {
      add_header Cache-Control "public, max-age=31536000, immutable";
    }
  }
}
`, listen, root)
}

// NginxCacheConf proxies to upstream with proxy_cache keeping 200s.
func NginxCacheConf(dir, listen, upstream string) string {
	return nginxHead(dir) + "http {\n" + nginxTemps(dir) + fmt.Sprintf(`  proxy_cache_path %s/cache levels=1:2 keys_zone=assets:16m max_size=1g inactive=60m use_temp_path=off;
  upstream app {
    server %s max_fails=0;
    keepalive 256;
  }
  server {
    listen %s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_cache assets;
      proxy_cache_valid 200 1y;
      add_header X-Cache $upstream_cache_status;
    }
  }
}
`, dir, upstream, listen)
}

// StartNginxConf starts nginx with the config conf returns for its listen address.
func StartNginxConf(bin, dir string, conf func(listen string) string) (*Nginx, error) {
	return startNginx(bin, dir, func(n *Nginx) error {
		return os.WriteFile(n.conf, []byte(conf(n.listen)), 0o644)
	})
}

// startNginx picks a free loopback port, has writeConf write n.conf, checks
// it with nginx -t and starts nginx, returning once it listens.
func startNginx(bin, dir string, writeConf func(n *Nginx) error) (*Nginx, error) {
	listen, err := FreePort()
	if err != nil {
		return nil, err
	}
	n := &Nginx{Addr: listen, dir: dir, conf: filepath.Join(dir, "nginx.conf"), listen: listen, done: make(chan struct{})}
	if err := writeConf(n); err != nil {
		return nil, err
	}
	if out, err := exec.Command(bin, "-t", "-q", "-c", n.conf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v: %s", err, out)
	}
	n.cmd = exec.Command(bin, "-c", n.conf, "-g", "daemon off;")
	n.cmd.Stderr = os.Stderr
	setDeathSignal(n.cmd, syscall.SIGTERM)
	if err := n.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting nginx: %w", err)
	}
	go func() {
		n.cmd.Wait()
		close(n.done)
	}()
	if err := n.waitListening(); err != nil {
		return nil, err
	}
	return n, nil
}

// waitListening waits up to 5s for nginx to accept on n.listen; on timeout it stops nginx.
func (n *Nginx) waitListening() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.listen, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("nginx exited at start; see %s/error.log", n.dir)
		default:
		}
		if time.Now().After(deadline) {
			n.Stop()
			return fmt.Errorf("nginx not listening on %s after 5s", n.listen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
