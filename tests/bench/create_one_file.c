// create_one_file [DIR]: a process that starts, creates one empty file in DIR as the recorder
// creates a trace (open O_CREAT|O_EXCL, mode 0600) and exits; with no DIR it only starts and
// exits. run_benchmarks.sh times both beside /bin/true: the difference is what giving each
// process a file of its own costs in that directory, whatever the recorder does (on ext4 after
// many deletions, mostly the inode allocator skipping recently deleted inodes).
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) return 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/create_one_file.%d", argv[1], (int)getpid());
  const int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return perror(path), 1;
  close(fd);
  return 0;
}
