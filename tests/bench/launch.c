/* launch: runs one command for the benchmark and reports exact figures about it as JSON lines.
 *
 *   launch PROGRAM [ARGS...]
 *
 * Why a separate tiny program: Linux folds the high-water RSS of the process image that
 * calls execve into the child's ru_maxrss, so a child forked from the Python driver would
 * report at least the driver's ~12 MB. Forked from this static launcher (a few hundred KB,
 * its own VmHWM reported as launcher_hwm_kb) the peak RSS wait4() reports is the command's
 * own whenever it is above launcher_hwm_kb.
 *
 * stdout (to the driver), one JSON object per line:
 *   {"pid":N,"exec_ns":T}     T = CLOCK_MONOTONIC in the child right before execve
 *   {"status":S,"exit":E,"signal":G,"maxrss_kb":K,"utime_us":U,"stime_us":V,"end_ns":T2,"launcher_hwm_kb":L}
 *                             after wait4; T2 = CLOCK_MONOTONIC right after it returned
 * The command's stdout and stderr both go to the launcher's stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t monotonic_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: launch PROGRAM [ARGS...]\n");
        return 2;
    }
    int stamp[2];
    if (pipe2(stamp, O_CLOEXEC) != 0) {
        perror("launch: pipe2");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("launch: fork");
        return 2;
    }
    if (pid == 0) {
        dup2(2, 1);
        int64_t now = monotonic_ns();
        if (write(stamp[1], &now, sizeof now) != sizeof now) _exit(127);
        execvp(argv[1], argv + 1);
        fprintf(stderr, "launch: exec %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    close(stamp[1]);
    int64_t exec_ns = 0;
    if (read(stamp[0], &exec_ns, sizeof exec_ns) != sizeof exec_ns) exec_ns = 0;
    close(stamp[0]);
    printf("{\"pid\":%d,\"exec_ns\":%lld}\n", (int)pid, (long long)exec_ns);
    fflush(stdout);

    int status = 0;
    struct rusage usage;
    pid_t done;
    do {
        done = wait4(pid, &status, 0, &usage);
    } while (done < 0 && errno == EINTR);
    int64_t end_ns = monotonic_ns();
    if (done < 0) {
        perror("launch: wait4");
        return 2;
    }
    long hwm_kb = -1;
    FILE *own = fopen("/proc/self/status", "r");
    if (own) {
        char line[256];
        while (fgets(line, sizeof line, own))
            if (sscanf(line, "VmHWM: %ld kB", &hwm_kb) == 1) break;
        fclose(own);
    }
    printf("{\"status\":%d,\"exit\":%d,\"signal\":%d,\"maxrss_kb\":%ld,\"utime_us\":%lld,\"stime_us\":%lld,"
           "\"end_ns\":%lld,\"launcher_hwm_kb\":%ld}\n",
           status, WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
           usage.ru_maxrss, (long long)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec,
           (long long)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec, (long long)end_ns, hwm_kb);
    fflush(stdout);
    return 0;
}
