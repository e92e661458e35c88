// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO migration v2 of the ivshmem-plain backend on two functions (PVP_BDF_A, PVP_BDF_B, both
 * bound to persona-vfio-pci with one persona; their BAR2 may differ in size, the persona's size
 * is what both present): the feature and its flags, every arc, PRE_COPY carrying the whole
 * BAR2 with PRECOPY_INFO falling to zero, STOP_COPY carrying exactly the pages written since
 * (none for an idle device), a save on A resumed on B in reads and writes of 1 B to 1 MiB with
 * a pattern over the whole memory compared, reset and close in every state, and mutated streams
 * refused with B usable after.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "pvp_util.h"

#define NSTATES 8
#define PI_SZ sizeof(struct vfio_precopy_info)
#define PAGE 4096u
#define MAX_RUN 64u
/* Header; config record; ivshmem record; end record. */
#define HDR 120u
#define FIXED ((16u + 1024u) + (16u + 32u) + 24u)
/* Bytes read or written in the chunk under test before the rest goes in 1 MiB pieces. */
#define CHUNKED (256u * 1024u)

static const char *const names[NSTATES] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

static bool reachable(int from, int to)
{
	if (from == VFIO_DEVICE_STATE_ERROR || to == VFIO_DEVICE_STATE_ERROR)
		return false;
	if (from == VFIO_DEVICE_STATE_STOP_COPY &&
	    (to == VFIO_DEVICE_STATE_PRE_COPY || to == VFIO_DEVICE_STATE_PRE_COPY_P2P))
		return false;
	return true;
}

/* Page records carrying every page of @pages once: data plus a record header and prefix each. */
static size_t full_len(size_t pages)
{
	return pages * PAGE + (pages + MAX_RUN - 1) / MAX_RUN * 32;
}

/* BAR2 mapped; its presented size in *len. */
static uint8_t *map_bar2(struct __test_metadata *_metadata, int devfd, size_t *len)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR2_REGION_INDEX };
	void *p;

	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &ri)) {
		TH_LOG("region info: %s", strerror(errno));
		return NULL;
	}
	EXPECT_NE(0, ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, devfd, ri.offset);
	if (p == MAP_FAILED) {
		TH_LOG("mmap BAR2: %s", strerror(errno));
		return NULL;
	}
	*len = ri.size;
	return p;
}

/* The pattern of page @i for round @r. */
static void fill_page(uint8_t *page, size_t i, unsigned int r)
{
	uint64_t v = (i + 1) * 0x9e3779b97f4a7c15ull ^ ((uint64_t)r << 48);
	size_t k;

	for (k = 0; k < PAGE; k += 8) {
		v ^= v << 13;
		v ^= v >> 7;
		v ^= v << 17;
		memcpy(page + k, &v, 8);
	}
}

/*
 * Reads @fd into @buf at *len until EOF (0) or ENOMSG (-ENOMSG): the first CHUNKED bytes of
 * this call in reads of @chunk, then 1 MiB reads. Other errors: -errno.
 */
static int read_part(int fd, uint8_t *buf, size_t max, size_t *len, size_t chunk)
{
	size_t start = *len;

	for (;;) {
		size_t c = *len - start < CHUNKED ? chunk : (1u << 20);
		size_t want = c < max - *len ? c : max - *len;
		ssize_t n;

		if (!want)
			return -ENOSPC;
		n = read(fd, buf + *len, want);
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		*len += n;
	}
}

/* Writes @len bytes: the first CHUNKED in writes of @chunk, the rest in 1 MiB. 0 or -errno. */
static int write_part(int fd, const uint8_t *buf, size_t len, size_t chunk)
{
	size_t done = 0;

	while (done < len) {
		size_t c = done < CHUNKED ? chunk : (1u << 20);
		size_t want = c < len - done ? c : len - done;
		ssize_t n = write(fd, buf + done, want);

		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += n;
	}
	return 0;
}

FIXTURE(shm) {
	struct pvp_dev a, b;
	uint8_t *ma, *mb;
	size_t la, lb, pages;
	uint8_t *stream;
	size_t max;
};

FIXTURE_SETUP(shm)
{
	const char *bdf_a = pvp_env("PVP_BDF_A"), *bdf_b = pvp_env("PVP_BDF_B");

	self->a.devfd = self->b.devfd = -1;
	self->ma = self->mb = NULL;
	self->stream = NULL;
	if (!bdf_a || !bdf_b)
		SKIP(return, "PVP_BDF_A and PVP_BDF_B name two ivshmem-plain functions");
	ASSERT_EQ(0, pvp_dev_open(bdf_a, &self->a));
	ASSERT_EQ(0, pvp_dev_open(bdf_b, &self->b));
	self->ma = map_bar2(_metadata, self->a.devfd, &self->la);
	self->mb = map_bar2(_metadata, self->b.devfd, &self->lb);
	ASSERT_NE(NULL, self->ma);
	ASSERT_NE(NULL, self->mb);
	ASSERT_EQ(self->la, self->lb) TH_LOG("one persona: the same presented BAR2 size");
	self->pages = self->la / PAGE;
	/* A PRE_COPY pass and a STOP_COPY pass of every page, and the rest. */
	self->max = HDR + FIXED + 2 * full_len(self->pages);
	self->stream = malloc(self->max);
	ASSERT_NE(NULL, self->stream);
}

FIXTURE_TEARDOWN(shm)
{
	if (self->ma)
		munmap(self->ma, self->la);
	if (self->mb)
		munmap(self->mb, self->lb);
	if (self->a.devfd >= 0)
		pvp_dev_close(&self->a);
	if (self->b.devfd >= 0)
		pvp_dev_close(&self->b);
	free(self->stream);
}

/*
 * The end of a migration from A to B: A back to RUNNING with its data fd closed, the stream
 * (@len bytes of self->stream) written to B in chunks of @chunk bytes, B RUNNING with A's BAR2.
 */
static void resume_on_b(struct __test_metadata *_metadata, FIXTURE_DATA(shm) *self, int fd,
			size_t len, size_t chunk)
{
	int rfd = -1;

	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	ASSERT_EQ(0, write_part(rfd, self->stream, len, chunk));
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(rfd);
	EXPECT_EQ(0, memcmp(self->ma, self->mb, self->la))
		TH_LOG("chunks of %zu bytes: B's BAR2 differs from A's", chunk);
}

TEST_F(shm, feature)
{
	uint64_t flags = 0, len = 0;
	uint32_t st = 0;

	ASSERT_EQ(0, pvp_mig_flags(self->a.devfd, &flags));
	EXPECT_EQ(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY, flags);
	ASSERT_EQ(0, pvp_mig_get(self->a.devfd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
	ASSERT_EQ(0, pvp_mig_data_size(self->a.devfd, &len));
	EXPECT_EQ(HDR + FIXED + full_len(self->pages), len);
	TH_LOG("BAR2 presented at %zu MiB: %zu pages", self->la >> 20, self->pages);
}

TEST_F(shm, arcs)
{
	int from, to;

	for (from = 1; from < NSTATES; from++) {
		for (to = 0; to < NSTATES; to++) {
			uint32_t st = 0;
			int r;

			r = pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
			if (r == -EINVAL && !pvp_mig_get(self->a.devfd, &st) &&
			    st == VFIO_DEVICE_STATE_STOP)
				r = pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
			ASSERT_EQ(0, r);
			ASSERT_EQ(0, pvp_mig_set(self->a.devfd, from, NULL))
				TH_LOG("RUNNING -> %s", names[from]);
			r = pvp_mig_set(self->a.devfd, to, NULL);
			ASSERT_EQ(0, pvp_mig_get(self->a.devfd, &st));
			if (from == VFIO_DEVICE_STATE_RESUMING && reachable(from, to) &&
			    to != from) {
				EXPECT_EQ(-EINVAL, r) TH_LOG("%s -> %s", names[from], names[to]);
				EXPECT_EQ(VFIO_DEVICE_STATE_STOP, st);
			} else if (reachable(from, to)) {
				EXPECT_EQ(0, r) TH_LOG("%s -> %s: %s", names[from], names[to],
						       strerror(-r));
				EXPECT_EQ(to, st) TH_LOG("%s -> %s", names[from], names[to]);
			} else {
				EXPECT_EQ(-EINVAL, r) TH_LOG("%s -> %s", names[from], names[to]);
				EXPECT_EQ(from, st) TH_LOG("%s -> %s", names[from], names[to]);
			}
		}
	}
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
}

/*
 * For each chunk size: a pattern over all of A's BAR2, PRE_COPY read to ENOMSG (PRECOPY_INFO
 * from every page to 0), some pages rewritten through the mmap, STOP_COPY carrying exactly
 * those (none in the first round: an idle device), resumed on B, B's BAR2 equal to A's.
 */
TEST_F_TIMEOUT(shm, precopy_save_resume, 1200)
{
	static const size_t chunks[] = { 1, 7, 4096, 65536, 1 << 20 };
	unsigned int c;

	for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		uint64_t initial = 0, dirty = 0, size = 0;
		size_t i, len = 0, pre, changed = c * 3, want_stop;
		int fd = -1;

		for (i = 0; i < self->pages; i++)
			fill_page(self->ma + i * PAGE, i, c);
		memset(self->mb, 0xa5, self->lb);
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
		ASSERT_EQ(0, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
		EXPECT_EQ(HDR + full_len(self->pages), initial);
		EXPECT_EQ(0, dirty);
		EXPECT_EQ(-ENOMSG, read_part(fd, self->stream, self->max, &len, chunks[c]));
		pre = len;
		EXPECT_EQ(HDR + full_len(self->pages), pre);
		ASSERT_EQ(0, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
		EXPECT_EQ(0, initial);
		EXPECT_EQ(0, dirty);
		ASSERT_EQ(0, pvp_mig_data_size(self->a.devfd, &size));
		EXPECT_EQ(HDR + FIXED, size);
		/* Writes after the page was read for PRE_COPY: isolated pages, one word each. */
		for (i = 0; i < changed; i++) {
			size_t pg = (i * 997 + 5) % self->pages;

			self->ma[pg * PAGE + (i * 8) % PAGE] ^= 0x5a;
		}
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP_COPY, NULL));
		EXPECT_EQ(0, read_part(fd, self->stream, self->max, &len, chunks[c]));
		want_stop = FIXED + changed * (32 + PAGE);
		EXPECT_EQ(want_stop, len - pre)
			TH_LOG("chunk %zu: STOP_COPY carried %zu bytes for %zu pages changed",
			       chunks[c], len - pre, changed);
		TH_LOG("chunk %zu: PRE_COPY %zu bytes, STOP_COPY %zu bytes (%zu pages changed)",
		       chunks[c], pre, len - pre, changed);
		resume_on_b(_metadata, self, fd, len, chunks[c]);
	}
}

/* STOP -> STOP_COPY without PRE_COPY carries every page; resumed on B. */
TEST_F_TIMEOUT(shm, stop_copy_only, 300)
{
	size_t i, len = 0;
	int fd = -1;

	for (i = 0; i < self->pages; i++)
		fill_page(self->ma + i * PAGE, i, 77);
	memset(self->mb, 0, self->lb);
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	EXPECT_EQ(0, read_part(fd, self->stream, self->max, &len, 1 << 20));
	EXPECT_EQ(HDR + FIXED + full_len(self->pages), len);
	resume_on_b(_metadata, self, fd, len, 1 << 20);
}

/*
 * STOP_COPY compares every word of every page with what PRE_COPY sent: a change in a page's
 * last word is found as one in its first, next to another changed page, across the driver's
 * record (64 pages) and lock-hold (256 pages) boundaries and at the memory's last page. The
 * changed pages travel as runs ({0,1}, {63,64}, {255,256}, {last}): exactly those bytes, and B
 * ends equal to A.
 */
TEST_F_TIMEOUT(shm, stop_copy_finds_every_word, 600)
{
	size_t i, len = 0, pre, last = self->pages - 1;
	const size_t pg[] = { 0, 1, 63, 64, 255, 256, last };
	const size_t word[] = { PAGE - 8, 0, PAGE - 8, 8, PAGE - 16, PAGE - 8, PAGE - 8 };
	int fd = -1;

	ASSERT_LT(257, last) TH_LOG("a memory of more than 258 pages");
	for (i = 0; i < self->pages; i++)
		fill_page(self->ma + i * PAGE, i, 5);
	memset(self->mb, 0x3c, self->lb);
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	EXPECT_EQ(-ENOMSG, read_part(fd, self->stream, self->max, &len, 1 << 20));
	pre = len;
	for (i = 0; i < sizeof(pg) / sizeof(pg[0]); i++)
		self->ma[pg[i] * PAGE + word[i] + 7] ^= 0x80;
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	EXPECT_EQ(0, read_part(fd, self->stream, self->max, &len, 1 << 20));
	/* Four runs, each a record header and prefix (32 bytes), of seven pages in all. */
	EXPECT_EQ(FIXED + 4 * 32 + 7 * PAGE, len - pre)
		TH_LOG("STOP_COPY carried %zu bytes", len - pre);
	resume_on_b(_metadata, self, fd, len, 1 << 20);
}

/* A reset in every state: back to RUNNING, the data fd ends; the device migrates after. */
TEST_F_TIMEOUT(shm, reset_and_close_every_state, 600)
{
	int s;

	for (s = 1; s < NSTATES; s++) {
		uint32_t st = 0;
		uint8_t byte = 0;
		int fd = -1;

		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, s, &fd)) TH_LOG("-> %s", names[s]);
		ASSERT_EQ(0, pvp_device_reset(self->a.devfd)) TH_LOG("reset in %s", names[s]);
		ASSERT_EQ(0, pvp_mig_get(self->a.devfd, &st));
		EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st) TH_LOG("after a reset in %s", names[s]);
		if (fd >= 0) {
			/* A resuming fd is write-only, a saving one read-only. */
			if (s == VFIO_DEVICE_STATE_RESUMING) {
				EXPECT_EQ(-1, write(fd, &byte, 1));
			} else {
				EXPECT_EQ(-1, read(fd, &byte, 1));
			}
			EXPECT_EQ(ENODEV, errno) TH_LOG("data fd after a reset in %s", names[s]);
			close(fd);
		}
	}
	/* Close in every state: a new open finds RUNNING and a working save. */
	for (s = 1; s < NSTATES; s++) {
		const char *bdf = pvp_env("PVP_BDF_A");
		uint32_t st = 0;
		size_t len = 0;
		int fd = -1;

		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, s, &fd)) TH_LOG("-> %s", names[s]);
		munmap(self->ma, self->la);
		self->ma = NULL;
		pvp_dev_close(&self->a);
		if (fd >= 0)
			close(fd);
		ASSERT_EQ(0, pvp_dev_open(bdf, &self->a));
		self->ma = map_bar2(_metadata, self->a.devfd, &self->la);
		ASSERT_NE(NULL, self->ma);
		ASSERT_EQ(0, pvp_mig_get(self->a.devfd, &st));
		EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st) TH_LOG("after a close in %s", names[s]);
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP, NULL));
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
		EXPECT_EQ(0, read_part(fd, self->stream, self->max, &len, 1 << 20));
		EXPECT_EQ(HDR + FIXED + full_len(self->pages), len);
		close(fd);
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	}
}

/*
 * Mutated streams (PVP_SEED picks them):
 * - PVP_MUTATIONS (default 10000) with one byte of the stream's structure changed: the header,
 *   the first page record's header or its prefix, written in one write() up to a little past the
 *   change (the rest never comes). Each must be refused, at that write or when leaving
 *   RESUMING; one refused at its first write leaves B in STOP with nothing loaded, one refused
 *   later in ERROR, then reset.
 * - PVP_DATA_MUTATIONS (default 20) whole streams with one byte changed anywhere past the header
 *   (page data included): the checksum (or a prefix check) refuses each, B stays usable.
 * After all of them B takes the valid stream and its BAR2 equals A's.
 */
TEST_F_TIMEOUT(shm, mutated_streams_refused, 3000)
{
	const char *e = getenv("PVP_MUTATIONS"), *sd = getenv("PVP_SEED");
	const char *ed = getenv("PVP_DATA_MUTATIONS");
	unsigned int n = e ? strtoul(e, NULL, 0) : 10000, seed = sd ? strtoul(sd, NULL, 0) : 1;
	unsigned int nd = ed ? strtoul(ed, NULL, 0) : 20;
	size_t i, len = 0, span, at_write = 0, at_arc = 0, resets = 0;
	struct timespec t0, t1;
	uint8_t *m;
	int fd = -1;

	for (i = 0; i < self->pages; i++)
		fill_page(self->ma + i * PAGE, i, 99);
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	ASSERT_EQ(0, read_part(fd, self->stream, self->max, &len, 1 << 20));
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	/* The header, the first page record's header and prefix (the config record comes later). */
	span = HDR + 32;
	m = malloc(len);
	ASSERT_NE(NULL, m);
	memcpy(m, self->stream, len);
	srand(seed);
	TH_LOG("seed %u: %u structure mutations, %u whole-stream mutations", seed, n, nd);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		size_t at = (size_t)rand() % span, upto = at + 1 + rand() % (2 * PAGE);
		uint8_t x = 1 + rand() % 255;
		uint32_t st = 0;
		ssize_t w;
		int rfd = -1, r;

		m[at] ^= x;
		ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &rfd));
		w = write(rfd, m, upto);
		r = pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
		m[at] ^= x;
		EXPECT_NE(0, r) TH_LOG("mutation %zu: byte %zu ^ %#x accepted", i, at, x);
		if (w < 0)
			at_write++;
		else
			at_arc++;
		close(rfd);
		ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
		if (st == VFIO_DEVICE_STATE_ERROR) {
			resets++;
			ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
		} else if (st != VFIO_DEVICE_STATE_RUNNING) {
			ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TH_LOG("%u structure mutations refused: %zu at their write, %zu leaving RESUMING "
	       "(%zu resets), %ld s", n, at_write, at_arc, resets, (long)(t1.tv_sec - t0.tv_sec));
	for (i = 0; i < nd; i++) {
		size_t at = HDR + (size_t)rand() % (len - HDR);
		uint8_t x = 1 + rand() % 255;
		uint32_t st = 0;
		int rfd = -1, w, r;

		m[at] ^= x;
		ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &rfd));
		w = write_part(rfd, m, len, 1 << 20);
		r = pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
		m[at] ^= x;
		EXPECT_NE(0, r) TH_LOG("whole stream, byte %zu ^ %#x accepted (write %d)", at, x, w);
		TH_LOG("whole stream, byte %zu of %zu ^ %#x: write %s, leaving RESUMING %s", at, len,
		       x, w ? strerror(-w) : "ok", r ? strerror(-r) : "ok");
		close(rfd);
		ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
		if (st == VFIO_DEVICE_STATE_ERROR) {
			ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
		} else if (st != VFIO_DEVICE_STATE_RUNNING) {
			ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
		}
	}
	free(m);
	/* B still takes the valid stream. */
	memset(self->mb, 0, self->lb);
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &fd));
	ASSERT_EQ(0, write_part(fd, self->stream, len, 1 << 20));
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	EXPECT_EQ(0, memcmp(self->ma, self->mb, self->la));
}

TEST_HARNESS_MAIN
