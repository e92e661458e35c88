/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the guest-side device tools (edu_regs, shm_pattern) share: a PCI function reached through
 * sysfs, for a guest whose kernel has no /dev/mem. DEV is "/sys/bus/pci/devices/BDF"; PROG
 * prefixes the messages on stderr. Static functions, one copy per tool.
 */
#ifndef PVP_SYSFS_DEV_H
#define PVP_SYSFS_DEV_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A whole C number (0x.. for hex); 0 on success, -1 for NULL, empty or trailing text. */
static inline int sd_parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !*s)
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return errno || *end ? -1 : 0;
}

/* Seconds on the monotonic clock. */
static inline double sd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sets BITS in the command register through the sysfs config file; 0 on success. */
static inline int sd_set_command(const char *prog, const char *dev, uint16_t bits)
{
	char path[300];
	uint16_t cmd;
	int fd, ok;

	snprintf(path, sizeof(path), "%s/config", dev);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	ok = pread(fd, &cmd, 2, 4) == 2;
	cmd |= bits;
	ok = ok && pwrite(fd, &cmd, 2, 4) == 2;
	if (!ok)
		fprintf(stderr, "%s: command register of %s: %s\n", prog, dev, strerror(errno));
	close(fd);
	return ok ? 0 : -1;
}

/*
 * Maps BAR N (sysfs resourceN) shared, read-write: *LEN bytes of it, or all of it when *LEN is 0
 * (then *LEN is set to its size). NULL on failure, with a message.
 */
static inline void *sd_map_bar(const char *prog, const char *dev, int n, uint64_t *len)
{
	char path[300];
	struct stat st;
	void *map;
	int fd;

	snprintf(path, sizeof(path), "%s/resource%d", dev, n);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0 || fstat(fd, &st)) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!*len)
		*len = (uint64_t)st.st_size;
	map = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		fprintf(stderr, "%s: mmap %s (%" PRIu64 " bytes): %s\n", prog, path, *len,
			strerror(errno));
		return NULL;
	}
	return map;
}

#endif /* PVP_SYSFS_DEV_H */
