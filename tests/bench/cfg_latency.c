// SPDX-License-Identifier: GPL-2.0
/*
 * Config-region access latency through VFIO, one device against a baseline device:
 *
 *   cfg_latency [-n ROUNDS] [-w WARMUP] [-o OPEN_ROUNDS] BASE_BDF DEV_BDF
 *
 * Both functions must be the same model, each bound to its driver (for example an edu on vfio-pci
 * as the baseline and an edu on persona-vfio-pci). Each is opened the way a VMM does it (cdev,
 * /dev/iommu, an IOAS, bind, attach). Every round times one access per case on each device, the
 * two devices alternating which goes first, so both see the same guest conditions. The cases
 * cover the byte classes of a persona on an edu:
 *
 *   read  id      4 B at 0x00  pinned passthrough (vendor, device)
 *   read  cmd     4 B at 0x04  dynamic command + pinned status
 *   read  bar     4 B at 0x10  BAR0 (emulated by the persona; virtualized by vfio-pci-core)
 *   read  msi     4 B at 0x40  MSI capability (passthrough to vfio-pci-core's virtualization)
 *   read  hidden  4 B at 0xf0  past every capability (hidden by a persona)
 *   read  all     256 B at 0   the whole standard header and capability space, as lspci does
 *   write cmd     2 B at 0x04  the command register's own value written back
 *   write bar     4 B at 0x10  BAR0's own value written back
 *   write msi     2 B at 0x42  MSI flags' own value written back
 *   mmio read     4 B at BAR0 0x00  a register of the device model (edu's ID), not config
 *                 space: what one device access costs (memory decoding is turned on at open)
 *
 * Then OPEN_ROUNDS (default 200) interleaved opens and closes of each device the way a VMM does
 * them (cdev open, /dev/iommu, IOAS, bind, attach, then close of both fds): on persona-vfio-pci
 * an open checks the persona against the device again.
 *
 * One line per case: the median per access in ns on each device and their ratio (device over
 * baseline; 1.00 is parity, lower is faster). A timing is never judged: the exit status is
 * non-zero only when a device cannot be used or an access fails or returns other bytes than the
 * baseline where the two must agree (ids).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "pvp_util.h"

struct cas {
	const char *name;
	int write;
	uint32_t off, len;
	int bar0;	/* in BAR0 rather than the config region */
};

static const struct cas cases[] = {
	{ "read id", 0, 0x00, 4 },	{ "read cmd", 0, 0x04, 4 },
	{ "read bar", 0, 0x10, 4 },	{ "read msi", 0, 0x40, 4 },
	{ "read hidden", 0, 0xf0, 4 },	{ "read all", 0, 0x00, 256 },
	{ "write cmd", 1, 0x04, 2 },	{ "write bar", 1, 0x10, 4 },
	{ "write msi", 1, 0x42, 2 },	{ "mmio read", 0, 0x00, 4, 1 },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct dev {
	const char *bdf;
	struct pvp_dev d;
	uint64_t cfg;			/* config region offset in the device fd */
	uint64_t bar0;			/* BAR0 region offset */
	uint8_t wval[NCASES][4];	/* what each write case writes: the register's own value */
	uint64_t *ns[NCASES];
};

static void __attribute__((noreturn)) fail(const char *bdf, const char *what, int err)
{
	fprintf(stderr, "cfg_latency: %s: %s: %s\n", bdf, what, strerror(err));
	exit(1);
}

static uint64_t now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void open_dev(struct dev *v, int rounds)
{
	uint64_t size;
	size_t i;
	int err;

	err = pvp_dev_open(v->bdf, &v->d);
	if (err)
		fail(v->bdf, "open", -err);
	err = pvp_config_size(v->d.devfd, &v->cfg, &size);
	if (err)
		fail(v->bdf, "config region info", -err);
	{
		struct vfio_region_info ri = { .argsz = sizeof(ri),
					       .index = VFIO_PCI_BAR0_REGION_INDEX };
		uint16_t cmd;

		if (ioctl(v->d.devfd, VFIO_DEVICE_GET_REGION_INFO, &ri))
			fail(v->bdf, "BAR0 region info", errno);
		v->bar0 = ri.offset;
		/* Memory decoding on, so that BAR0 answers (before the write cases read back). */
		if (pread(v->d.devfd, &cmd, 2, v->cfg + 4) != 2)
			fail(v->bdf, "read command", errno);
		cmd |= 0x2;
		if (pwrite(v->d.devfd, &cmd, 2, v->cfg + 4) != 2)
			fail(v->bdf, "enable memory decoding", errno);
	}
	for (i = 0; i < NCASES; i++) {
		v->ns[i] = calloc(rounds, sizeof(uint64_t));
		if (!v->ns[i])
			fail(v->bdf, "calloc", ENOMEM);
		if (cases[i].write &&
		    pread(v->d.devfd, v->wval[i], cases[i].len, v->cfg + cases[i].off) !=
			    (ssize_t)cases[i].len)
			fail(v->bdf, "read before write", errno);
	}
}

/* One access of case @i; returns its time in ns. */
static uint64_t one(struct dev *v, size_t i)
{
	const struct cas *c = &cases[i];
	uint8_t buf[256];
	uint64_t t0, t1;
	ssize_t n;

	t0 = now();
	if (c->write)
		n = pwrite(v->d.devfd, v->wval[i], c->len, v->cfg + c->off);
	else
		n = pread(v->d.devfd, buf, c->len, (c->bar0 ? v->bar0 : v->cfg) + c->off);
	t1 = now();
	if (n != (ssize_t)c->len)
		fail(v->bdf, c->name, n < 0 ? errno : EIO);
	return t1 - t0;
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
	int rounds = 20000, warmup = 500, opens = 200, opt, r;
	uint64_t *ot[2];
	struct dev dv[2] = {};
	uint8_t a[4], b[4];
	size_t i;

	while ((opt = getopt(argc, argv, "n:w:o:")) != -1) {
		if (opt == 'n')
			rounds = atoi(optarg);
		else if (opt == 'w')
			warmup = atoi(optarg);
		else if (opt == 'o')
			opens = atoi(optarg);
		else
			return 2;
	}
	if (argc - optind != 2 || rounds < 1 || opens < 1) {
		fprintf(stderr,
			"usage: cfg_latency [-n ROUNDS] [-w WARMUP] [-o OPEN_ROUNDS] BASE_BDF DEV_BDF\n");
		return 2;
	}
	dv[0].bdf = argv[optind];
	dv[1].bdf = argv[optind + 1];
	open_dev(&dv[0], rounds);
	open_dev(&dv[1], rounds);
	if (pread(dv[0].d.devfd, a, 4, dv[0].cfg) != 4 || pread(dv[1].d.devfd, b, 4, dv[1].cfg) != 4 ||
	    memcmp(a, b, 4)) {
		fprintf(stderr, "cfg_latency: the two functions are not the same model\n");
		return 1;
	}
	for (r = 0; r < warmup; r++)
		for (i = 0; i < NCASES; i++) {
			one(&dv[0], i);
			one(&dv[1], i);
		}
	for (r = 0; r < rounds; r++)
		for (i = 0; i < NCASES; i++) {
			int first = r & 1;

			dv[first].ns[i][r] = one(&dv[first], i);
			dv[!first].ns[i][r] = one(&dv[!first], i);
		}
	printf("config access, median ns over %d interleaved rounds: baseline %s, device %s\n", rounds,
	       dv[0].bdf, dv[1].bdf);
	for (i = 0; i < NCASES; i++) {
		uint64_t m0 = median(dv[0].ns[i], rounds), m1 = median(dv[1].ns[i], rounds);

		printf("%s %-11s %3u B at 0x%02x: baseline %6llu ns, device %6llu ns, ratio %.2f\n",
		       cases[i].bar0 ? "bar0" : "cfg", cases[i].name, cases[i].len, cases[i].off,
		       (unsigned long long)m0, (unsigned long long)m1,
		       m0 ? (double)m1 / (double)m0 : 0.0);
	}
	pvp_dev_close(&dv[0].d);
	pvp_dev_close(&dv[1].d);
	ot[0] = calloc(opens, sizeof(uint64_t));
	ot[1] = calloc(opens, sizeof(uint64_t));
	if (!ot[0] || !ot[1])
		fail("-", "calloc", ENOMEM);
	for (r = 0; r < opens; r++)
		for (i = 0; i < 2; i++) {
			struct dev *v = &dv[(r + i) & 1];
			uint64_t t0 = now();
			int err = pvp_dev_open(v->bdf, &v->d);

			if (err)
				fail(v->bdf, "open", -err);
			pvp_dev_close(&v->d);
			ot[v == &dv[1]][r] = now() - t0;
		}
	{
		uint64_t m0 = median(ot[0], opens), m1 = median(ot[1], opens);

		printf("open+close  (VMM sequence) x %d: baseline %6llu us, device %6llu us, ratio %.2f\n",
		       opens, (unsigned long long)(m0 / 1000), (unsigned long long)(m1 / 1000),
		       m0 ? (double)m1 / (double)m0 : 0.0);
	}
	return 0;
}
