// SPDX-License-Identifier: GPL-2.0
/*
 * shm_pattern: a seeded pattern in the shared memory (BAR2) of an ivshmem-plain function, mapped
 * through sysfs (resource2), for a guest whose kernel has no /dev/mem. It runs inside the inner
 * guest of tests/guest/suites/migration-qemu-ivshmem.sh (where the function is a vfio-pci
 * device of QEMU), and in the bench's outer guest to fill a function's memory before a run.
 *
 *   shm_pattern BDF OP...
 *     enable        set memory space in the command register (through the sysfs config file)
 *     size          print "size BYTES": BAR2's size as the guest sees it
 *     fill:SEED:MIB write the pattern of SEED over the first MIB MiB of BAR2
 *     check:SEED:MIB read it back; print "check SEED MIB ok", or fail naming the number of
 *                   differing 8-byte words and the first one (offset, value read, value wanted)
 *     poke:OFF      flip every bit of the 8-byte word at OFF (a deliberate corruption)
 *
 * The word at offset o of seed s is splitmix64(s * 2^64/phi + o): every word of every page
 * differs from its neighbours' and from another seed's. Each fill and check prints its time.
 * Exit 0 when every operation succeeded, 1 on a failed operation (message on stderr), 2 on
 * bad usage.
 */
#include "sysfs_dev.h"

static volatile uint64_t *mem;
static uint64_t mem_len;
static char dev[256];

static int usage(void)
{
	fprintf(stderr, "usage: shm_pattern BDF {enable|size|fill:SEED:MIB|check:SEED:MIB|poke:OFF}...\n");
	return 2;
}

static uint64_t word(uint64_t seed, uint64_t off)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ULL + off;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* span: MIB MiB as bytes, if it fits in BAR2; 0 otherwise. */
static uint64_t span(uint64_t mib)
{
	uint64_t n = mib << 20;

	if (!mib || mib > mem_len >> 20) {
		fprintf(stderr, "shm_pattern: %" PRIu64 " MiB is not within BAR2 (%" PRIu64 " bytes)\n",
			mib, mem_len);
		return 0;
	}
	return n;
}

static int fill(uint64_t seed, uint64_t mib)
{
	uint64_t n = span(mib), o;
	double t = sd_now();

	if (!n)
		return -1;
	for (o = 0; o < n; o += 8)
		mem[o / 8] = word(seed, o);
	printf("fill %" PRIu64 " %" PRIu64 " ok %.0f ms\n", seed, mib, (sd_now() - t) * 1e3);
	return 0;
}

static int check(uint64_t seed, uint64_t mib)
{
	uint64_t n = span(mib), o, bad = 0, first = 0, got = 0;
	double t = sd_now();

	if (!n)
		return -1;
	for (o = 0; o < n; o += 8) {
		uint64_t v = mem[o / 8];

		if (v != word(seed, o)) {
			if (!bad++) {
				first = o;
				got = v;
			}
		}
	}
	if (bad) {
		fprintf(stderr, "shm_pattern: check %" PRIu64 " %" PRIu64 ": %" PRIu64
			" words differ, the first at 0x%" PRIx64 " (read 0x%016" PRIx64 ", want 0x%016" PRIx64 ")\n",
			seed, mib, bad, first, got, word(seed, first));
		return -1;
	}
	printf("check %" PRIu64 " %" PRIu64 " ok %.0f ms\n", seed, mib, (sd_now() - t) * 1e3);
	return 0;
}

static int enable(void)
{
	if (sd_set_command("shm_pattern", dev, 0x2 /* memory space */))
		return -1;
	printf("enable ok\n");
	return 0;
}

/* op: one operation; 0 on success, -1 on failure, -2 on bad usage. */
static int op(char *s)
{
	char *a = strchr(s, ':'), *b = NULL;
	uint64_t x = 0, y = 0;

	if (a) {
		*a++ = 0;
		b = strchr(a, ':');
		if (b)
			*b++ = 0;
	}
	if (!strcmp(s, "enable") && !a)
		return enable();
	if (!strcmp(s, "size") && !a) {
		printf("size %" PRIu64 "\n", mem_len);
		return 0;
	}
	if ((!strcmp(s, "fill") || !strcmp(s, "check")) && !sd_parse_u64(a, &x) && !sd_parse_u64(b, &y))
		return s[0] == 'f' ? fill(x, y) : check(x, y);
	if (!strcmp(s, "poke") && !b && !sd_parse_u64(a, &x)) {
		if (x % 8 || x >= mem_len) {
			fprintf(stderr, "shm_pattern: poke 0x%" PRIx64 " is not an aligned word of BAR2\n", x);
			return -1;
		}
		mem[x / 8] = ~mem[x / 8];
		printf("poke 0x%" PRIx64 " ok\n", x);
		return 0;
	}
	return -2;
}

int main(int argc, char **argv)
{
	int i, r;

	if (argc < 3)
		return usage();
	snprintf(dev, sizeof(dev), "/sys/bus/pci/devices/%s", argv[1]);
	mem_len = 0;
	mem = sd_map_bar("shm_pattern", dev, 2, &mem_len);
	if (!mem)
		return 1;
	for (i = 2; i < argc; i++) {
		r = op(argv[i]);
		if (r == -2)
			return usage();
		if (r)
			return 1;
	}
	return 0;
}
