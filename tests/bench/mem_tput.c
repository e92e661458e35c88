// SPDX-License-Identifier: GPL-2.0
/*
 * Save and load throughput of a memory-BAR migration backend (ivshmem-plain on
 * persona-vfio-pci) against copying the same BAR with memcpy in the same run:
 *
 *   mem_tput [-n ROUNDS] [-w WARMUP] BDF
 *
 * The function is opened the way a VMM does it and its BAR 2 (the memory the backend carries)
 * is mmap'd. Every round times, in this order:
 *
 *   copy from  memcpy of the whole BAR 2 into a user buffer (the bound of a save: every byte
 *              of the memory read once from the BAR, as the driver's memcpy_fromio does);
 *   save       RUNNING -> STOP_COPY (the kernel steps through STOP; the backend reads the BAR)
 *              and the data fd read to EOF in 1 MiB reads;
 *   load       -> RESUMING, the stream written back in 1 MiB writes, -> RUNNING (the backend
 *              writes the BAR at RESUMING -> STOP);
 *   copy to    memcpy of the buffer into the whole BAR 2, running again (the bound of a load:
 *              memcpy_toio).
 *
 * A user mapping of the BAR reaches the same memory as the kernel's iomap of it, so the
 * user-space copy is the same bound as memcpy_fromio/memcpy_toio of that BAR, without a test
 * module. One line per direction: the throughput of each from its median time, and their ratio
 * (the backend's over memcpy's; 1.00 is parity, higher is faster). A timing is never judged:
 * the exit status is non-zero only when the device cannot be used or a stream is wrong.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "pvp_util.h"

#define CHUNK (1u << 20)

static const char *bdf;

static void __attribute__((noreturn)) fail(const char *what, int err)
{
	fprintf(stderr, "mem_tput: %s: %s: %s\n", bdf, what, strerror(err));
	exit(1);
}

static uint64_t now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	int rounds = 20, warmup = 2, opt, r, fd, err;
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR2_REGION_INDEX };
	uint64_t *t[4], t0, flags;
	struct pvp_dev d;
	uint8_t *bar, *buf, *stream;
	size_t max, len = 0;
	ssize_t n;

	while ((opt = getopt(argc, argv, "n:w:")) != -1) {
		if (opt == 'n')
			rounds = atoi(optarg);
		else if (opt == 'w')
			warmup = atoi(optarg);
		else
			return 2;
	}
	if (optind + 1 != argc || rounds < 1 || warmup < 0) {
		fprintf(stderr, "usage: mem_tput [-n ROUNDS] [-w WARMUP] BDF\n");
		return 2;
	}
	bdf = argv[optind];
	err = pvp_dev_open(bdf, &d);
	if (err)
		fail("open", -err);
	err = pvp_mig_flags(d.devfd, &flags);
	if (err || !(flags & VFIO_MIGRATION_STOP_COPY))
		fail("no VFIO_MIGRATION_STOP_COPY", err ? -err : EOPNOTSUPP);
	if (ioctl(d.devfd, VFIO_DEVICE_GET_REGION_INFO, &ri))
		fail("BAR 2 region info", errno);
	if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || !ri.size)
		fail("BAR 2 cannot be mapped", EINVAL);
	bar = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, d.devfd, ri.offset);
	if (bar == MAP_FAILED)
		fail("mmap BAR 2", errno);
	/* Page records carry a header and prefix per run of pages: well under 1/16 more. */
	max = ri.size + ri.size / 16 + CHUNK;
	buf = malloc(ri.size);
	stream = malloc(max);
	for (r = 0; r < 4; r++)
		t[r] = calloc(rounds, sizeof(uint64_t));
	if (!buf || !stream || !t[0] || !t[1] || !t[2] || !t[3])
		fail("malloc", ENOMEM);
	/* Memory that is not all zeros, so every page is carried as it is. */
	for (size_t i = 0; i < ri.size; i++)
		buf[i] = (uint8_t)(i * 131 + (i >> 12));
	memcpy(bar, buf, ri.size);

	for (r = -warmup; r < rounds; r++) {
		uint64_t c0, s0, c1, l0;

		t0 = now();
		memcpy(buf, bar, ri.size);
		c0 = now() - t0;

		t0 = now();
		err = pvp_mig_set(d.devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd);
		if (err || fd < 0)
			fail("RUNNING -> STOP_COPY", err ? -err : EBADF);
		n = pvp_read_all(fd, stream, max, CHUNK);
		if (n < 0)
			fail("read of the stream", (int)-n);
		close(fd);
		s0 = now() - t0;
		if ((size_t)n < ri.size || (size_t)n == max || (len && (size_t)n != len))
			fail("the stream is not the memory and a little more", EBADMSG);
		len = n;

		t0 = now();
		err = pvp_mig_set(d.devfd, VFIO_DEVICE_STATE_RESUMING, &fd);
		if (err || fd < 0)
			fail("STOP_COPY -> RESUMING", err ? -err : EBADF);
		err = pvp_write_all(fd, stream, len, CHUNK);
		if (err)
			fail("write of the stream", -err);
		err = pvp_mig_set(d.devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
		if (err)
			fail("RESUMING -> RUNNING", -err);
		close(fd);
		l0 = now() - t0;

		/* Running again: the BAR is the guest's. */
		t0 = now();
		memcpy(bar, buf, ri.size);
		c1 = now() - t0;

		if (r >= 0) {
			t[0][r] = c0;
			t[1][r] = s0;
			t[2][r] = c1;
			t[3][r] = l0;
		}
	}
	if (memcmp(buf, bar, ri.size))
		fail("the memory differs after the last load", EBADMSG);

	{
		double mib = (double)ri.size / (1 << 20);
		double cf = mib * 1e9 / median(t[0], rounds), sv = mib * 1e9 / median(t[1], rounds);
		double ct = mib * 1e9 / median(t[2], rounds), ld = mib * 1e9 / median(t[3], rounds);

		printf("memory save: baseline %.0f MiB/s, device %.0f MiB/s, ratio %.2f (%llu B of BAR 2 against memcpy from it, %zu B stream, median of %d)\n",
		       cf, sv, sv / cf, (unsigned long long)ri.size, len, rounds);
		printf("memory load: baseline %.0f MiB/s, device %.0f MiB/s, ratio %.2f (%llu B of BAR 2 against memcpy to it, median of %d)\n",
		       ct, ld, ld / ct, (unsigned long long)ri.size, rounds);
	}
	munmap(bar, ri.size);
	pvp_dev_close(&d);
	return 0;
}
