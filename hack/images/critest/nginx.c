/*
 * The nginx look-alike of critest's images (hack/images/critest-layouts.py):
 * what critest observes of nginx, and nothing more. It answers every request
 * with 200 and index.html, listens on $LISTEN_PORT (default 80), writes its
 * pid to /var/run/nginx.pid, is named "nginx" (pidof nginx) and shows
 * "nginx: master process ..." as its command line, as nginx's master does.
 * SIGTERM, SIGINT and SIGQUIT (its image's stop signal) end it, also as a
 * container's PID 1.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TITLE "nginx: master process nginx -g daemon off;"
#define INDEX "/usr/share/nginx/html/index.html"

static void on_term(int sig) { _exit(128 + sig); }

int main(int argc, char **argv) {
    (void)argc;
    if (strcmp(argv[0], TITLE) != 0) {
        char *args[] = {TITLE, NULL};
        execv("/proc/self/exe", args);
        perror("nginx: re-exec");
        return 1;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGQUIT, on_term);
    signal(SIGPIPE, SIG_IGN);

    static char body[65536];
    size_t body_len = 0;
    FILE *f = fopen(INDEX, "r");
    if (f) {
        body_len = fread(body, 1, sizeof body, f);
        fclose(f);
    }

    const char *port_env = getenv("LISTEN_PORT");
    int port = port_env ? atoi(port_env) : 80;
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (srv < 0 || bind(srv, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(srv, 64) < 0) {
        perror("nginx: listen");
        return 1;
    }

    mkdir("/var/run", 0755);
    FILE *pid = fopen("/var/run/nginx.pid", "w");
    if (pid) {
        fprintf(pid, "%d\n", getpid());
        fclose(pid);
    }
    printf("nginx: listening on port %d\n", port);
    fflush(stdout);

    for (;;) {
        int c = accept(srv, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            perror("nginx: accept");
            return 1;
        }
        char req[4096];
        ssize_t n = read(c, req, sizeof req);
        (void)n;
        char head[256];
        int head_len = snprintf(head, sizeof head,
                                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                                "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                                body_len);
        if (write(c, head, head_len) == head_len && body_len > 0)
            (void)!write(c, body, body_len);
        close(c);
        printf("nginx: GET 200\n");
        fflush(stdout);
    }
}
