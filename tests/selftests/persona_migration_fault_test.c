// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO migration v2 of persona-vfio-pci when things go wrong, on two edu functions (PVP_BDF_A,
 * PVP_BDF_B, both bound to persona-vfio-pci with the same persona):
 *
 *  - the ERROR row of the state grid: ERROR reached through a refused stream, every target
 *    refused from it, VFIO_DEVICE_RESET back to RUNNING;
 *  - VFIO_DEVICE_RESET, closing the data fd and closing the device in every state: RUNNING
 *    afterwards, an old data fd fails every call, and the device saves and resumes again;
 *    resets racing with saves and resumes;
 *  - mutated and truncated streams (PVP_STREAMS, default 10000, from the seed PVP_SEED): every
 *    one refused, nothing applied, then the valid stream accepted and the state equal to the
 *    source's; a write() that faults part way;
 *  - DMA held in RUNNING_P2P until RUNNING, BAR0 writes refused while stopped, accesses spanning
 *    several registers refused, writes vfio refuses kept out of the saved state;
 *  - PRECOPY_INFO and MIG_DATA_SIZE;
 *  - with PVP_MISMATCH set (the suite gives B another persona first, see migration.sh): the
 *    destination refuses the stream at its first write, and the source carries on.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "edu.h"
#include "pvp_util.h"

#define NSTATES 8
#define STREAM_MAX (64 * 1024)
#define PI_SZ ((uint32_t)sizeof(struct vfio_precopy_info))

/* The stream format (the core's mig::stream). */
#define HDR_LEN 120
#define REC_HDR 16
#define END_LEN 24
#define TAG_END 0
#define TAG_CONFIG 0x100
#define TAG_EDU 0x10001
#define EDU_REC_LEN 64
/* The edu record's DMA command: carried for information, not restorable (see edu.rs). */
#define EDU_REC_CMD 20

/* An IOVA below edu's 28-bit DMA mask. */
#define DMA_IOVA 0x100000
#define DMA_LEN 256

static const char *const names[NSTATES] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

static bool has_fd(uint32_t st)
{
	return st == VFIO_DEVICE_STATE_STOP_COPY || st == VFIO_DEVICE_STATE_RESUMING ||
	       st == VFIO_DEVICE_STATE_PRE_COPY || st == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

static bool stream_errno(int e)
{
	return e == EINVAL || e == EBADMSG || e == EOPNOTSUPP || e == EPROTO || e == EFBIG;
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	int i;

	for (i = 0; i < n; i++, v >>= 8)
		p[i] = v;
}

static uint64_t rotl(uint64_t v, int r)
{
	return v << r | v >> (64 - r);
}

/*
 * The stream checksum (the core's mig::checksum): four lanes of running sums over 64-bit words,
 * the last block zero-padded, then a mix. Recomputed here to forge streams whose only fault is
 * their content.
 */
static uint64_t stream_sum(const uint8_t *p, size_t len)
{
	uint64_t a[4] = {}, s[4] = {}, h;
	uint8_t block[32];
	size_t off;
	int i;

	for (off = 0; off < len; off += 32) {
		size_t n = len - off < 32 ? len - off : 32;

		memset(block, 0, sizeof(block));
		memcpy(block, p + off, n);
		for (i = 0; i < 4; i++) {
			a[i] += get_le(block + 8 * i, 8);
			s[i] += a[i];
		}
	}
	h = (uint64_t)len ^ 0x9e3779b97f4a7c15ULL;
	for (i = 0; i < 8; i++)
		h = rotl((h ^ (i < 4 ? a[i] : s[i - 4])) * 0xff51afd7ed558ccdULL, 31);
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 29);
}

/* Makes the last 8 bytes the checksum of everything before them. */
static void fix_sum(uint8_t *b, size_t n)
{
	if (n >= 8)
		put_le(b + n - 8, stream_sum(b, n - 8), 8);
}

/* Where each record of a stream is: its header's offset, tag and payload length. */
struct layout {
	int n;
	size_t at[8];
	uint32_t tag[8];
	uint64_t len[8];
};

/* Walks a well-formed stream; -EINVAL if it is not one. */
static int layout_of(const uint8_t *s, size_t len, struct layout *l)
{
	size_t at = HDR_LEN;

	l->n = 0;
	while (at + REC_HDR <= len && l->n < 8) {
		l->at[l->n] = at;
		l->tag[l->n] = get_le(s + at, 4);
		l->len[l->n] = get_le(s + at + 8, 8);
		at += REC_HDR + l->len[l->n];
		if (l->tag[l->n++] == TAG_END)
			return at == len ? 0 : -EINVAL;
	}
	return -EINVAL;
}

/* A device state as a stream, and the offset of its edu record's payload. */
struct stream {
	uint8_t b[STREAM_MAX];
	size_t len;
	size_t edu;
};

/* The same device state: equal streams but for the edu record's DMA command. */
static bool same_state(const struct stream *x, const struct stream *y)
{
	size_t cmd = x->edu + EDU_REC_CMD;

	return x->len == y->len && x->edu == y->edu && !memcmp(x->b, y->b, cmd) &&
	       !memcmp(x->b + cmd + 4, y->b + cmd + 4, x->len - cmd - 4 - END_LEN);
}

/* splitmix64: the mutations are a function of the seed. */
static uint64_t rng;

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint32_t below(uint32_t n)
{
	return rnd() % n;
}

static uint32_t rd(int devfd, uint64_t bar, uint32_t reg)
{
	uint32_t v = 0xdeadbeef;

	if (pread(devfd, &v, 4, bar + reg) != 4)
		return 0xdeadbeef;
	return v;
}

/* A BAR0 write of @len (4 or 8) bytes: 0 or -errno. */
static int wr(int devfd, uint64_t bar, uint32_t reg, uint64_t v, size_t len)
{
	uint8_t b[8];

	put_le(b, v, 8);
	return pwrite(devfd, b, len, bar + reg) == (ssize_t)len ? 0 : -errno;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Polls until @reg & @mask reads 0, for up to 2 s: 0 or -ETIMEDOUT. */
static int wait_clear(int devfd, uint64_t bar, uint32_t reg, uint32_t mask)
{
	int i;

	for (i = 0; i < 400; i++) {
		if (!(rd(devfd, bar, reg) & mask))
			return 0;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

FIXTURE(fault) {
	const char *bdf_a, *bdf_b;
	struct pvp_dev a, b;
	uint64_t bar_a, bar_b;
	struct stream s, t;
	unsigned int tag;
};

static int bar_of(int devfd, uint64_t *bar)
{
	uint32_t flags;

	return pvp_region_offset(devfd, VFIO_PCI_BAR0_REGION_INDEX, bar, &flags);
}

FIXTURE_SETUP(fault)
{
	self->bdf_a = pvp_env("PVP_BDF_A");
	self->bdf_b = pvp_env("PVP_BDF_B");
	self->a.devfd = self->b.devfd = -1;
	if (!self->bdf_a || !self->bdf_b)
		SKIP(return, "PVP_BDF_A and PVP_BDF_B name two edu functions");
	ASSERT_EQ(0, pvp_dev_open(self->bdf_a, &self->a));
	ASSERT_EQ(0, pvp_dev_open(self->bdf_b, &self->b));
	ASSERT_EQ(0, bar_of(self->a.devfd, &self->bar_a));
	ASSERT_EQ(0, bar_of(self->b.devfd, &self->bar_b));
	self->tag = getpid() & 0xfff;
}

FIXTURE_TEARDOWN(fault)
{
	if (self->a.devfd >= 0)
		pvp_dev_close(&self->a);
	if (self->b.devfd >= 0)
		pvp_dev_close(&self->b);
}

/*
 * Gives the device a state of its own: liveness @v, a finished factorial, the IRQ-on-factorial
 * bit, DMA registers. 0 or -errno.
 */
static int set_regs(int devfd, uint64_t bar, uint32_t v)
{
	int err = 0;

	err = err ?: wr(devfd, bar, EDU_LIVE, v, 4);
	err = err ?: wait_clear(devfd, bar, EDU_STATUS, 1);
	err = err ?: wr(devfd, bar, EDU_FACT, 3 + v % 10, 4);
	err = err ?: wait_clear(devfd, bar, EDU_STATUS, 1);
	err = err ?: wr(devfd, bar, EDU_STATUS, v & 1 ? 0x80 : 0, 4);
	err = err ?: wr(devfd, bar, EDU_DMA_SRC, 0x1000 + v, 8);
	err = err ?: wr(devfd, bar, EDU_DMA_DST, EDU_BUF, 8);
	err = err ?: wr(devfd, bar, EDU_DMA_CNT, 8 + (v & 0xff), 8);
	return err;
}

/* Saves the device (RUNNING -> STOP_COPY, to EOF, -> RUNNING) into @s: 0 or -errno. */
static int save(int devfd, struct stream *s)
{
	struct layout l;
	ssize_t n;
	int fd, err;

	err = pvp_mig_set(devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd);
	if (err)
		return err;
	n = pvp_read_all(fd, s->b, sizeof(s->b), 4096);
	close(fd);
	err = pvp_mig_set(devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
	if (n < 0)
		return n;
	if (err)
		return err;
	s->len = n;
	if (layout_of(s->b, s->len, &l) || l.n != 3 || l.tag[0] != TAG_CONFIG ||
	    l.tag[1] != TAG_EDU || l.len[1] != EDU_REC_LEN)
		return -EBADMSG;
	s->edu = l.at[1] + REC_HDR;
	return 0;
}

/* Resumes @s on the device (-> RESUMING, writes of @chunk bytes, -> RUNNING): 0 or -errno. */
static int resume(int devfd, const struct stream *s, size_t chunk)
{
	int fd, err;

	err = pvp_mig_set(devfd, VFIO_DEVICE_STATE_RESUMING, &fd);
	if (err)
		return err;
	err = pvp_write_all(fd, s->b, s->len, chunk);
	if (!err)
		err = pvp_mig_set(devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
	close(fd);
	return err;
}

/*
 * A migration from @src to @dst: the state @src is given arrives on @dst, and @dst saved again
 * gives the same state (self->s and self->t are used).
 */
static void roundtrip(struct __test_metadata *_metadata, FIXTURE_DATA(fault) *self,
		      struct pvp_dev *src, uint64_t sbar, struct pvp_dev *dst, uint64_t dbar)
{
	uint32_t v = 0x5a000000 | ++self->tag << 8, st = 0;

	ASSERT_EQ(0, set_regs(src->devfd, sbar, v));
	ASSERT_EQ(0, save(src->devfd, &self->s));
	ASSERT_EQ(v, get_le(self->s.b + self->s.edu + 4, 4));
	ASSERT_EQ(0, resume(dst->devfd, &self->s, 1 + v % 700));
	ASSERT_EQ(0, pvp_mig_get(dst->devfd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
	EXPECT_EQ(~v, rd(dst->devfd, dbar, EDU_LIVE));
	EXPECT_EQ(rd(src->devfd, sbar, EDU_FACT), rd(dst->devfd, dbar, EDU_FACT));
	ASSERT_EQ(0, save(dst->devfd, &self->t));
	EXPECT_TRUE(same_state(&self->s, &self->t));
}

#define ROUNDTRIPS()                                                                          \
	do {                                                                                  \
		roundtrip(_metadata, self, &self->a, self->bar_a, &self->b, self->bar_b);     \
		roundtrip(_metadata, self, &self->b, self->bar_b, &self->a, self->bar_a);     \
	} while (0)

/*
 * Puts the device in ERROR the honest way: a stream valid up to its end record (@bad_record
 * false), or complete with a valid checksum but an edu record whose reserved word is set, is
 * accepted by write() and refused at RESUMING -> STOP. *fd gets the (dead) resuming fd.
 */
static void enter_error(struct __test_metadata *_metadata, int devfd, const struct stream *good,
			bool bad_record, int *fd)
{
	static uint8_t b[STREAM_MAX];
	size_t n = good->len;
	uint32_t st = 0;

	memcpy(b, good->b, n);
	if (bad_record) {
		put_le(b + good->edu + 52, 1, 4);
		fix_sum(b, n);
	} else {
		n -= END_LEN;
	}
	ASSERT_EQ(0, pvp_mig_set(devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, pvp_mig_set(devfd, VFIO_DEVICE_STATE_RESUMING, fd));
	ASSERT_EQ(0, pvp_write_all(*fd, b, n, 4096));
	EXPECT_EQ(-EINVAL, pvp_mig_set(devfd, VFIO_DEVICE_STATE_STOP, NULL));
	ASSERT_EQ(0, pvp_mig_get(devfd, &st));
	ASSERT_EQ(VFIO_DEVICE_STATE_ERROR, st);
}

/*
 * To RUNNING. Leaving a RESUMING that took no data fails once (EINVAL, nothing applied, the
 * device in STOP: C8); RUNNING is then asked again. 0 or -errno.
 */
static int to_running(int devfd)
{
	uint32_t st = 0;
	int err = pvp_mig_set(devfd, VFIO_DEVICE_STATE_RUNNING, NULL);

	if (err == -EINVAL && !pvp_mig_get(devfd, &st) && st == VFIO_DEVICE_STATE_STOP)
		err = pvp_mig_set(devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
	return err;
}

/* Takes the device from RUNNING to @st; *fd gets the data fd of the session in @st, or -1. */
static void reach(struct __test_metadata *_metadata, int devfd, const struct stream *good,
		  uint32_t st, int *fd)
{
	uint32_t cur = 0;

	*fd = -1;
	if (st == VFIO_DEVICE_STATE_ERROR) {
		enter_error(_metadata, devfd, good, false, fd);
		return;
	}
	ASSERT_EQ(0, to_running(devfd));
	ASSERT_EQ(0, pvp_mig_set(devfd, st, fd)) TH_LOG("RUNNING -> %s", names[st]);
	ASSERT_EQ(has_fd(st), *fd >= 0) TH_LOG("RUNNING -> %s: fd %d", names[st], *fd);
	ASSERT_EQ(0, pvp_mig_get(devfd, &cur));
	ASSERT_EQ(st, cur);
}

/* Uses a session's fd part way: reads some of a saving one, writes some of a resuming one. */
static void use_fd(struct __test_metadata *_metadata, uint32_t st, int fd,
		   const struct stream *good)
{
	ssize_t want = st == VFIO_DEVICE_STATE_STOP_COPY ? 200 : 10;
	uint8_t buf[256];

	if (fd < 0 || st == VFIO_DEVICE_STATE_ERROR)
		return;
	if (st == VFIO_DEVICE_STATE_RESUMING) {
		ASSERT_EQ(200, write(fd, good->b, 200));
	} else {
		ASSERT_EQ(want, read(fd, buf, want));
	}
}

/* A session's fd after its session ended: every call fails with ENODEV. */
static void expect_dead(struct __test_metadata *_metadata, uint32_t st, int fd,
			const struct stream *good)
{
	uint64_t initial, dirty;
	uint8_t buf[16];

	if (fd < 0)
		return;
	if (st == VFIO_DEVICE_STATE_RESUMING || st == VFIO_DEVICE_STATE_ERROR) {
		EXPECT_EQ(-1, write(fd, good->b, 16)) TH_LOG("%s: write", names[st]);
		EXPECT_EQ(ENODEV, errno) TH_LOG("%s: write", names[st]);
	} else {
		EXPECT_EQ(-1, read(fd, buf, sizeof(buf))) TH_LOG("%s: read", names[st]);
		EXPECT_EQ(ENODEV, errno) TH_LOG("%s: read", names[st]);
	}
	EXPECT_EQ(-ENODEV, pvp_precopy_info(fd, PI_SZ, &initial, &dirty))
		TH_LOG("%s: PRECOPY_INFO", names[st]);
}

/* The ERROR row of the grid, entered both ways; reset leaves it; nothing was applied. */
TEST_F(fault, arcs_from_error)
{
	uint32_t live_b, st = 0;
	int way, to, fd;

	ASSERT_EQ(0, set_regs(self->a.devfd, self->bar_a, 0x11110000));
	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	ASSERT_EQ(0, set_regs(self->b.devfd, self->bar_b, 0x22220000));
	live_b = rd(self->b.devfd, self->bar_b, EDU_LIVE);
	for (way = 0; way < 2; way++) {
		enter_error(_metadata, self->b.devfd, &self->s, way, &fd);
		expect_dead(_metadata, VFIO_DEVICE_STATE_ERROR, fd, &self->s);
		for (to = 0; to < NSTATES; to++) {
			EXPECT_EQ(-EINVAL, pvp_mig_set(self->b.devfd, to, NULL))
				TH_LOG("ERROR -> %s", names[to]);
			ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
			EXPECT_EQ(VFIO_DEVICE_STATE_ERROR, st) TH_LOG("ERROR -> %s", names[to]);
		}
		/* The refused stream reached nothing. */
		EXPECT_EQ(live_b, rd(self->b.devfd, self->bar_b, EDU_LIVE));
		EXPECT_EQ(0, pvp_device_reset(self->b.devfd));
		ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
		EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
		EXPECT_EQ(live_b, rd(self->b.devfd, self->bar_b, EDU_LIVE));
		close(fd);
	}
	ROUNDTRIPS();
}

/* VFIO_DEVICE_RESET in every state, with the session's fd in use. */
TEST_F(fault, reset_every_state)
{
	uint32_t st, cur = 0;
	int fd;

	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	for (st = 0; st < NSTATES; st++) {
		reach(_metadata, self->b.devfd, &self->s, st, &fd);
		use_fd(_metadata, st, fd, &self->s);
		EXPECT_EQ(0, pvp_device_reset(self->b.devfd)) TH_LOG("reset in %s", names[st]);
		ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &cur));
		EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, cur) TH_LOG("reset in %s", names[st]);
		expect_dead(_metadata, st, fd, &self->s);
		if (fd >= 0)
			close(fd);
		ROUNDTRIPS();
	}
}

/* Closing the data fd early in each state that has one, untouched or part way. */
TEST_F(fault, close_data_fd_every_state)
{
	static const uint32_t states[] = {
		VFIO_DEVICE_STATE_PRE_COPY, VFIO_DEVICE_STATE_PRE_COPY_P2P,
		VFIO_DEVICE_STATE_STOP_COPY, VFIO_DEVICE_STATE_RESUMING,
	};
	uint32_t cur = 0;
	unsigned int i;
	int used, fd;

	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		uint32_t st = states[i];

		for (used = 0; used < 2; used++) {
			reach(_metadata, self->b.devfd, &self->s, st, &fd);
			if (used)
				use_fd(_metadata, st, fd, &self->s);
			close(fd);
			if (st == VFIO_DEVICE_STATE_PRE_COPY || st == VFIO_DEVICE_STATE_PRE_COPY_P2P)
				EXPECT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP_COPY,
							 NULL)) TH_LOG("%s -> STOP_COPY", names[st]);
			if (st == VFIO_DEVICE_STATE_RESUMING && used) {
				/* Part of a stream was delivered: incomplete, refused. */
				EXPECT_EQ(-EINVAL, pvp_mig_set(self->b.devfd,
							       VFIO_DEVICE_STATE_RUNNING, NULL));
				ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &cur));
				EXPECT_EQ(VFIO_DEVICE_STATE_ERROR, cur);
				EXPECT_EQ(0, pvp_device_reset(self->b.devfd));
			} else if (st == VFIO_DEVICE_STATE_RESUMING) {
				/* Nothing delivered: refused, nothing applied, left in STOP. */
				EXPECT_EQ(-EINVAL, pvp_mig_set(self->b.devfd,
							       VFIO_DEVICE_STATE_RUNNING, NULL));
				ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &cur));
				EXPECT_EQ(VFIO_DEVICE_STATE_STOP, cur);
				EXPECT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING,
							 NULL));
			} else {
				EXPECT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING,
							 NULL)) TH_LOG("%s (%d) -> RUNNING", names[st], used);
			}
			ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &cur));
			EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, cur);
			ROUNDTRIPS();
		}
	}
}

/* Closing the device in every state (the data fd still open): reopened, it is RUNNING. */
TEST_F(fault, close_device_every_state)
{
	uint32_t st, cur = 0;
	int fd;

	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	for (st = 0; st < NSTATES; st++) {
		reach(_metadata, self->b.devfd, &self->s, st, &fd);
		use_fd(_metadata, st, fd, &self->s);
		pvp_dev_close(&self->b);
		expect_dead(_metadata, st, fd, &self->s);
		ASSERT_EQ(0, pvp_dev_open(self->bdf_b, &self->b));
		ASSERT_EQ(0, bar_of(self->b.devfd, &self->bar_b));
		ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &cur));
		EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, cur) TH_LOG("closed in %s", names[st]);
		/* A new open does not revive the old session. */
		expect_dead(_metadata, st, fd, &self->s);
		if (fd >= 0)
			close(fd);
	}
	ROUNDTRIPS();
}

/* BAR0 writes while the device is stopped: EBUSY, nothing changes; reads still work. */
TEST_F(fault, stopped_refuses_bar_writes)
{
	static const uint32_t stopped[] = {
		VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_STOP_COPY, VFIO_DEVICE_STATE_RESUMING,
	};
	static const uint32_t running[] = {
		VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_PRE_COPY,
		VFIO_DEVICE_STATE_PRE_COPY_P2P,
	};
	uint32_t v = 0x33330000, fact;
	unsigned int i;
	int fd;

	ASSERT_EQ(0, set_regs(self->b.devfd, self->bar_b, v));
	fact = rd(self->b.devfd, self->bar_b, EDU_FACT);
	for (i = 0; i < sizeof(stopped) / sizeof(stopped[0]); i++) {
		uint32_t st = stopped[i];

		reach(_metadata, self->b.devfd, &self->s, st, &fd);
		EXPECT_EQ(-EBUSY, wr(self->b.devfd, self->bar_b, EDU_LIVE, 0x4444, 4))
			TH_LOG("%s", names[st]);
		EXPECT_EQ(-EBUSY, wr(self->b.devfd, self->bar_b, EDU_FACT, 5, 4));
		EXPECT_EQ(-EBUSY, wr(self->b.devfd, self->bar_b, EDU_DMA_SRC, 0x2000, 8));
		EXPECT_EQ(-EBUSY, wr(self->b.devfd, self->bar_b, EDU_STATUS, 0, 4));
		EXPECT_EQ(~v, rd(self->b.devfd, self->bar_b, EDU_LIVE)) TH_LOG("%s", names[st]);
		EXPECT_EQ(fact, rd(self->b.devfd, self->bar_b, EDU_FACT));
		if (fd >= 0)
			close(fd);
		EXPECT_EQ(0, to_running(self->b.devfd));
		EXPECT_EQ(~v, rd(self->b.devfd, self->bar_b, EDU_LIVE));
		EXPECT_EQ(0x1000 + v, rd(self->b.devfd, self->bar_b, EDU_DMA_SRC));
	}
	/* The shadow did not move either: the saved state still has them. */
	ASSERT_EQ(0, save(self->b.devfd, &self->s));
	EXPECT_EQ(v, get_le(self->s.b + self->s.edu + 4, 4));
	EXPECT_EQ(0x1000 + v, get_le(self->s.b + self->s.edu + 24, 8));
	/* Running states take writes. */
	for (i = 0; i < sizeof(running) / sizeof(running[0]); i++) {
		reach(_metadata, self->b.devfd, &self->s, running[i], &fd);
		EXPECT_EQ(0, wr(self->b.devfd, self->bar_b, EDU_LIVE, v + i, 4))
			TH_LOG("%s", names[running[i]]);
		EXPECT_EQ(~(v + i), rd(self->b.devfd, self->bar_b, EDU_LIVE));
		if (fd >= 0)
			close(fd);
	}
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
}

/*
 * A write covering several registers, or misaligned, is split the way vfio-pci-core splits it and
 * every piece is trapped: each register it reaches is shadowed and saved as if written alone, and
 * pieces edu ignores (narrower than 4 bytes) change nothing.
 */
TEST_F(fault, multi_register_writes)
{
	uint32_t v = 0x55550000;
	uint8_t b[16] = {};

	ASSERT_EQ(0, set_regs(self->b.devfd, self->bar_b, v));
	/* Liveness and factorial in one 8-byte write (two 4-byte device writes). */
	put_le(b, 0x6666, 4);
	put_le(b + 4, 4, 4);
	EXPECT_EQ(8, pwrite(self->b.devfd, b, 8, self->bar_b + EDU_LIVE));
	ASSERT_EQ(0, wait_clear(self->b.devfd, self->bar_b, EDU_STATUS, 1));
	EXPECT_EQ(~0x6666u, rd(self->b.devfd, self->bar_b, EDU_LIVE));
	EXPECT_EQ(24, rd(self->b.devfd, self->bar_b, EDU_FACT));
	/* DMA source and destination in one 16-byte write. */
	put_le(b, 0x2345000, 8);
	put_le(b + 8, 0x3456000, 8);
	EXPECT_EQ(16, pwrite(self->b.devfd, b, 16, self->bar_b + EDU_DMA_SRC));
	EXPECT_EQ(0x2345000, rd(self->b.devfd, self->bar_b, EDU_DMA_SRC));
	EXPECT_EQ(0x3456000, rd(self->b.devfd, self->bar_b, EDU_DMA_DST));
	/* A misaligned dword is two 2-byte pieces: edu ignores both. */
	put_le(b, 0x77777777, 4);
	EXPECT_EQ(4, pwrite(self->b.devfd, b, 4, self->bar_b + EDU_LIVE + 2));
	EXPECT_EQ(~0x6666u, rd(self->b.devfd, self->bar_b, EDU_LIVE));
	EXPECT_EQ(24, rd(self->b.devfd, self->bar_b, EDU_FACT));
	/* A 2-byte write: edu ignores it. */
	EXPECT_EQ(2, pwrite(self->b.devfd, b, 2, self->bar_b + EDU_LIVE));
	EXPECT_EQ(~0x6666u, rd(self->b.devfd, self->bar_b, EDU_LIVE));
	/* One register, 8 bytes: taken. Everything above is in the saved state. */
	EXPECT_EQ(0, wr(self->b.devfd, self->bar_b, EDU_DMA_DST, 0x123456789aULL, 8));
	ASSERT_EQ(0, save(self->b.devfd, &self->s));
	EXPECT_EQ(0x6666, get_le(self->s.b + self->s.edu + 4, 4));
	EXPECT_EQ(4, get_le(self->s.b + self->s.edu + 8, 4));
	EXPECT_EQ(0x2345000, get_le(self->s.b + self->s.edu + 24, 8));
	EXPECT_EQ(0x123456789aULL, get_le(self->s.b + self->s.edu + 32, 8));
}

/* A write vfio refuses (memory decoding off) reaches neither the device nor the saved state. */
TEST_F(fault, refused_write_not_shadowed)
{
	uint32_t v = 0x88880000;
	uint64_t cfg, cfg_size;
	uint16_t cmd = 0, off;

	ASSERT_EQ(0, set_regs(self->b.devfd, self->bar_b, v));
	ASSERT_EQ(0, pvp_config_size(self->b.devfd, &cfg, &cfg_size));
	ASSERT_EQ(2, pread(self->b.devfd, &cmd, 2, cfg + 4));
	ASSERT_TRUE(cmd & 0x2);
	off = cmd & ~0x2;
	ASSERT_EQ(2, pwrite(self->b.devfd, &off, 2, cfg + 4));
	EXPECT_EQ(-EIO, wr(self->b.devfd, self->bar_b, EDU_LIVE, 0x9999, 4));
	EXPECT_EQ(-EIO, wr(self->b.devfd, self->bar_b, EDU_FACT, 6, 4));
	EXPECT_EQ(-EIO, wr(self->b.devfd, self->bar_b, EDU_DMA_SRC, 0x4242, 8));
	ASSERT_EQ(2, pwrite(self->b.devfd, &cmd, 2, cfg + 4));
	EXPECT_EQ(~v, rd(self->b.devfd, self->bar_b, EDU_LIVE));
	ASSERT_EQ(0, save(self->b.devfd, &self->s));
	EXPECT_EQ(v, get_le(self->s.b + self->s.edu + 4, 4));
	EXPECT_EQ(3 + v % 10, get_le(self->s.b + self->s.edu + 8, 4));
	EXPECT_EQ(0x1000 + v, get_le(self->s.b + self->s.edu + 24, 8));
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	while (n--)
		if (*p++ != v)
			return false;
	return true;
}

/* Sets up edu DMA registers for a transfer of DMA_LEN bytes: 0 or -errno. */
static int dma_regs(int devfd, uint64_t bar, uint64_t src, uint64_t dst)
{
	int err = 0;

	err = err ?: wr(devfd, bar, EDU_DMA_SRC, src, 8);
	err = err ?: wr(devfd, bar, EDU_DMA_DST, dst, 8);
	err = err ?: wr(devfd, bar, EDU_DMA_CNT, DMA_LEN, 8);
	return err;
}

/*
 * RUNNING_P2P holds a DMA start until RUNNING: RAM keeps its bytes well past edu's 100 ms, the
 * command register shows no transfer; RUNNING then runs it. A reset drops a held start.
 */
TEST_F_TIMEOUT(fault, p2p_holds_dma, 60)
{
	uint64_t cfg, cfg_size;
	uint8_t *buf, pat[DMA_LEN], cmdw[16];
	uint16_t cmd = 0;
	uint32_t st = 0;
	int i, fd = self->a.devfd;

	buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 0, 4096);
	ASSERT_EQ(0, pvp_ioas_map(self->a.iommufd, self->a.ioas_id, buf, 4096, DMA_IOVA));
	ASSERT_EQ(0, pvp_config_size(fd, &cfg, &cfg_size));
	ASSERT_EQ(2, pread(fd, &cmd, 2, cfg + 4));
	cmd |= 0x6; /* memory space, bus master */
	ASSERT_EQ(2, pwrite(fd, &cmd, 2, cfg + 4));

	/* RAM -> edu in RUNNING: a pattern into edu's buffer (and proof that DMA works). */
	for (i = 0; i < DMA_LEN; i++)
		pat[i] = buf[i] = 0x3c ^ i;
	ASSERT_EQ(0, dma_regs(fd, self->bar_a, DMA_IOVA, EDU_BUF));
	ASSERT_EQ(0, wr(fd, self->bar_a, EDU_DMA_CMD, EDU_DMA_START, 4));
	ASSERT_EQ(0, wait_clear(fd, self->bar_a, EDU_DMA_CMD, EDU_DMA_START));
	memset(buf, 0, 4096);

	/* edu -> RAM started in RUNNING_P2P: held. */
	ASSERT_EQ(0, pvp_mig_set(fd, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, dma_regs(fd, self->bar_a, EDU_BUF, DMA_IOVA));
	ASSERT_EQ(0, wr(fd, self->bar_a, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM, 4));
	/* Count and command in one 16-byte write: the command piece is trapped and held too. */
	put_le(cmdw, DMA_LEN, 8);
	put_le(cmdw + 8, EDU_DMA_START | EDU_DMA_TO_RAM, 8);
	EXPECT_EQ(16, pwrite(fd, cmdw, 16, self->bar_a + EDU_DMA_CNT));
	usleep(400000);
	EXPECT_EQ(0, rd(fd, self->bar_a, EDU_DMA_CMD) & EDU_DMA_START);
	EXPECT_TRUE(all_bytes(buf, 4096, 0)) TH_LOG("RAM changed in RUNNING_P2P");
	ASSERT_EQ(0, pvp_mig_get(fd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING_P2P, st);

	/* RUNNING: the held transfer runs. */
	ASSERT_EQ(0, pvp_mig_set(fd, VFIO_DEVICE_STATE_RUNNING, NULL));
	for (i = 0; i < 200 && memcmp(buf, pat, DMA_LEN); i++)
		usleep(10000);
	EXPECT_EQ(0, memcmp(buf, pat, DMA_LEN)) TH_LOG("held DMA did not run in RUNNING");
	EXPECT_TRUE(all_bytes(buf + DMA_LEN, 4096 - DMA_LEN, 0));
	ASSERT_EQ(0, wait_clear(fd, self->bar_a, EDU_DMA_CMD, EDU_DMA_START));

	/* Held in RUNNING_P2P, then a reset: the start is dropped. */
	memset(buf, 0, 4096);
	ASSERT_EQ(0, pvp_mig_set(fd, VFIO_DEVICE_STATE_RUNNING_P2P, NULL));
	ASSERT_EQ(0, wr(fd, self->bar_a, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM, 4));
	ASSERT_EQ(0, pvp_device_reset(fd));
	ASSERT_EQ(0, pvp_mig_get(fd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
	usleep(400000);
	EXPECT_TRUE(all_bytes(buf, 4096, 0)) TH_LOG("held DMA ran after a reset");
	munmap(buf, 4096);
}

/*
 * PRECOPY_INFO: the header's size before reading, falling as it is read, 0 with -ENOMSG after;
 * EINVAL outside PRE_COPY states and for a short argsz, ENODEV once the session is over.
 */
TEST_F(fault, precopy_info)
{
	uint64_t initial = 0, dirty = 0, size = 0;
	uint8_t *b = self->s.b;
	size_t got = 0;
	int fd, fd2, rfd;
	ssize_t n;

	ASSERT_EQ(0, pvp_mig_data_size(self->a.devfd, &size));
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	EXPECT_EQ(-EINVAL, pvp_precopy_info(fd, PI_SZ - 1, &initial, &dirty));
	EXPECT_EQ(-EINVAL, pvp_precopy_info(fd, 0, &initial, &dirty));
	ASSERT_EQ(0, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
	EXPECT_EQ(HDR_LEN, initial);
	EXPECT_EQ(0, dirty);
	/* A byte at a time, then 7 at a time: initial_bytes follows. */
	while (got < HDR_LEN) {
		size_t want = got < 16 ? 1 : 7;

		n = read(fd, b + got, want);
		ASSERT_LT(0, n);
		got += n;
		ASSERT_EQ(0, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
		ASSERT_EQ(HDR_LEN - got, initial);
		EXPECT_EQ(0, dirty);
	}
	EXPECT_EQ(-1, read(fd, b + got, 64));
	EXPECT_EQ(ENOMSG, errno);
	/* PRE_COPY_P2P: the same session. */
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	ASSERT_EQ(0, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
	EXPECT_EQ(0, initial);
	EXPECT_EQ(-1, read(fd, b + got, 64));
	EXPECT_EQ(ENOMSG, errno);
	/* A resuming session has no pre-copy data. */
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	EXPECT_EQ(-EINVAL, pvp_precopy_info(rfd, PI_SZ, &initial, &dirty));
	close(rfd);
	ASSERT_EQ(0, to_running(self->b.devfd));
	/* STOP_COPY: EINVAL, then the rest to a permanent EOF. */
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	EXPECT_EQ(-EINVAL, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
	n = pvp_read_all(fd, b + got, STREAM_MAX - got, 333);
	ASSERT_LT(0, n);
	EXPECT_EQ(size, got + n);
	EXPECT_EQ(0, read(fd, b, 16));
	EXPECT_EQ(0, read(fd, b, 16));
	/* Over: ENODEV; a new session starts from the header again. */
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(-ENODEV, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
	EXPECT_EQ(-1, read(fd, b, 16));
	EXPECT_EQ(ENODEV, errno);
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd2));
	ASSERT_EQ(0, pvp_precopy_info(fd2, PI_SZ, &initial, &dirty));
	EXPECT_EQ(HDR_LEN, initial);
	EXPECT_EQ(-ENODEV, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
	close(fd2);
	close(fd);
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
}

/* MIG_DATA_SIZE: one value in every state, the bytes a STOP_COPY session gives. */
TEST_F(fault, data_size)
{
	uint64_t size = 0, sz;
	uint32_t st;
	ssize_t n;
	int fd;

	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	ASSERT_EQ(0, pvp_mig_data_size(self->a.devfd, &size));
	for (st = 0; st < NSTATES; st++) {
		reach(_metadata, self->b.devfd, &self->s, st, &fd);
		sz = 0;
		EXPECT_EQ(0, pvp_mig_data_size(self->b.devfd, &sz)) TH_LOG("%s", names[st]);
		EXPECT_EQ(size, sz) TH_LOG("%s", names[st]);
		if (st == VFIO_DEVICE_STATE_STOP_COPY) {
			n = pvp_read_all(fd, self->t.b, STREAM_MAX, 100);
			EXPECT_EQ((ssize_t)size, n);
		}
		if (fd >= 0)
			close(fd);
		if (st == VFIO_DEVICE_STATE_ERROR)
			ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
	}
	ASSERT_EQ(0, to_running(self->b.devfd));
	EXPECT_EQ(size, self->s.len);
}

/*
 * A write() whose buffer runs into an unmapped page returns the bytes taken before the fault;
 * the user goes on from there and the stream resumes.
 */
TEST_F(fault, write_fault_part_way)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *map, *p;
	uint32_t v = 0x77770000;
	ssize_t n;
	int fd;

	ASSERT_EQ(0, set_regs(self->a.devfd, self->bar_a, v));
	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	map = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, mprotect(map + pg, pg, PROT_NONE));
	p = map + pg - 600;
	memcpy(p, self->s.b, 600);
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &fd));
	n = write(fd, p, 900);
	EXPECT_LT(0, n) TH_LOG("write: %s", strerror(errno));
	EXPECT_GE(600, n);
	if (n > 0)
		EXPECT_EQ(0, pvp_write_all(fd, self->s.b + n, self->s.len - n, 512));
	EXPECT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	EXPECT_EQ(~v, rd(self->b.devfd, self->bar_b, EDU_LIVE));
	munmap(map, 2 * pg);
}

/* A migration loop on one device and VFIO_DEVICE_RESET in a loop on the same device. */
struct race {
	int devfd;
	const struct stream *good;
	atomic_int stop;
	atomic_long saves, resumes, cut, arc_errs, bad, resets, reset_errs;
	int last_bad;
};

static void race_bad(struct race *r, int err)
{
	r->last_bad = err;
	atomic_fetch_add(&r->bad, 1);
}

static void *race_migrate(void *arg)
{
	static uint8_t buf[STREAM_MAX];
	struct race *r = arg;
	struct layout l;

	while (!atomic_load(&r->stop)) {
		ssize_t n;
		int fd, err;

		/* Save: a whole stream to EOF, or the session ended by a reset (ENODEV). */
		err = pvp_mig_set(r->devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd);
		if (err) {
			atomic_fetch_add(&r->arc_errs, 1);
			pvp_mig_set(r->devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
			continue;
		}
		n = pvp_read_all(fd, buf, sizeof(buf), 64);
		close(fd);
		if (n >= 0 && ((size_t)n != r->good->len || layout_of(buf, n, &l) ||
			       get_le(buf + n - 8, 8) != stream_sum(buf, n - 8)))
			race_bad(r, -EIO);
		else if (n < 0 && n != -ENODEV)
			race_bad(r, n);
		atomic_fetch_add(n >= 0 ? &r->saves : &r->cut, 1);
		err = pvp_mig_set(r->devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
		if (err)
			atomic_fetch_add(&r->arc_errs, 1);

		/* Resume: the whole stream, or cut by a reset (ENODEV); leaving RESUMING works. */
		err = pvp_mig_set(r->devfd, VFIO_DEVICE_STATE_RESUMING, &fd);
		if (err) {
			atomic_fetch_add(&r->arc_errs, 1);
			pvp_mig_set(r->devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
			continue;
		}
		err = pvp_write_all(fd, r->good->b, r->good->len, 100);
		if (err && err != -ENODEV)
			race_bad(r, err);
		atomic_fetch_add(err ? &r->cut : &r->resumes, 1);
		err = pvp_mig_set(r->devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
		close(fd);
		if (err)
			atomic_fetch_add(&r->arc_errs, 1);
	}
	return NULL;
}

/*
 * Resets racing with saves and resumes: the reset lands while the state lock is held (the
 * deferred path) or not; either way a session it ends fails with ENODEV, never with a short
 * stream, and the device is usable afterwards. The suite checks lockdep.
 */
TEST_F_TIMEOUT(fault, reset_races_migration, 120)
{
	struct race r = { .devfd = self->b.devfd, .good = &self->s };
	uint32_t st = 0;
	pthread_t t;
	int i;

	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	ASSERT_EQ(0, pthread_create(&t, NULL, race_migrate, &r));
	for (i = 0; i < 300; i++) {
		if (pvp_device_reset(self->b.devfd))
			atomic_fetch_add(&r.reset_errs, 1);
		else
			atomic_fetch_add(&r.resets, 1);
		usleep(below(5000));
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%ld resets (%ld failed), %ld saves and %ld resumes whole, %ld cut, %ld arcs failed",
	       r.resets, r.reset_errs, r.saves, r.resumes, r.cut, r.arc_errs);
	EXPECT_EQ(0, r.bad) TH_LOG("last: %s", strerror(-r.last_bad));
	EXPECT_EQ(0, r.reset_errs);
	EXPECT_LT(0, r.cut) TH_LOG("no session was ever ended by a reset");
	EXPECT_LT(0, r.saves + r.resumes);
	ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
	ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
	ROUNDTRIPS();
}

/* Where a mutated stream must be refused, and with which errno (0: any stream errno). */
enum where { AT_WRITE, AT_STOP, ANYWHERE };

struct expect {
	enum where where;
	int err;
};

struct mutator {
	const char *name;
	unsigned int weight;
	size_t (*fn)(uint8_t *b, size_t n, const struct layout *l, struct expect *e);
	unsigned int count, at_write, at_stop;
};

static size_t m_flip_header(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	b[below(HDR_LEN)] ^= 1 << below(8);
	*e = (struct expect){ AT_WRITE, 0 };
	return n;
}

static size_t m_flip_record_header(uint8_t *b, size_t n, const struct layout *l,
				   struct expect *e)
{
	b[l->at[below(l->n)] + below(REC_HDR)] ^= 1 << below(8);
	*e = (struct expect){ AT_WRITE, 0 };
	return n;
}

static size_t m_flip_payload(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	int r = below(2);

	b[l->at[r] + REC_HDR + below(l->len[r])] ^= 1 << below(8);
	*e = (struct expect){ AT_WRITE, EBADMSG };
	return n;
}

static size_t m_flip_checksum(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	b[n - 8 + below(8)] ^= 1 << below(8);
	*e = (struct expect){ AT_WRITE, EBADMSG };
	return n;
}

static size_t m_scribble(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	size_t at = below(n), len = 1 + below(16), i;

	for (i = 0; i < len && at + i < n; i++)
		b[at + i] ^= 1 + below(255);
	*e = (struct expect){ ANYWHERE, 0 };
	return n;
}

/* Truncation points: every field boundary of the stream and its neighbours, then random ones. */
static size_t m_truncate(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	static const size_t hdr[] = { 1, 8, 10, 12, 14, 16, 20, 21, 24, 56, HDR_LEN };
	static const size_t rec[] = { 4, 8, REC_HDR };
	static unsigned int next;
	size_t cut[64], k = 0, i;
	int r;

	for (i = 0; i < sizeof(hdr) / sizeof(hdr[0]); i++)
		cut[k++] = hdr[i];
	for (r = 0; r < l->n; r++) {
		for (i = 0; i < sizeof(rec) / sizeof(rec[0]); i++)
			cut[k++] = l->at[r] + rec[i];
		cut[k++] = l->at[r] + REC_HDR + l->len[r] / 2;
		cut[k++] = r + 1 < l->n ? l->at[r + 1] : n - 1;
	}
	i = next++;
	if (i < 3 * k) {
		/* Each boundary, one byte before it, one byte after it. */
		size_t c = cut[i / 3] + i % 3 - 1;

		n = c >= 1 && c < n ? c : n - 1;
	} else {
		n = 1 + below(n - 1);
	}
	*e = (struct expect){ AT_STOP, EINVAL };
	return n;
}

static size_t m_append(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	size_t k = 1 + below(64), i;

	for (i = 0; i < k; i++)
		b[n + i] = rnd();
	*e = (struct expect){ AT_WRITE, EINVAL };
	return n + k;
}

static size_t m_swap_records(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	static uint8_t tmp[STREAM_MAX];
	size_t c = l->at[0], c_len = l->at[1] - c, e_len = l->at[2] - l->at[1];

	memcpy(tmp, b + l->at[1], e_len);
	memcpy(tmp + e_len, b + c, c_len);
	memcpy(b + c, tmp, c_len + e_len);
	*e = (struct expect){ AT_WRITE, EBADMSG };
	return n;
}

static size_t insert(uint8_t *b, size_t n, size_t at, const uint8_t *src, size_t len)
{
	memmove(b + at + len, b + at, n - at);
	memcpy(b + at, src, len);
	return n + len;
}

static size_t m_duplicate_record(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	static uint8_t rec[STREAM_MAX];
	int r = below(2);
	size_t len = l->at[r + 1] - l->at[r];

	memcpy(rec, b + l->at[r], len);
	n = insert(b, n, l->at[r + 1], rec, len);
	if (below(2))
		fix_sum(b, n);
	*e = (struct expect){ AT_WRITE, EINVAL };
	return n;
}

static size_t m_length(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	static const uint64_t vals[] = {
		0, 1, 7, 8, 9, 63, 65, 1023, 1025, 65536, 65537, 1 << 20, 0xffffffffULL,
		1ULL << 32, 1ULL << 63, UINT64_MAX,
	};
	int r = below(l->n);
	uint64_t v;

	do
		v = vals[below(sizeof(vals) / sizeof(vals[0]))];
	while (v == l->len[r]);
	put_le(b + l->at[r] + 8, v, 8);
	fix_sum(b, n);
	*e = (struct expect){ AT_WRITE, 0 };
	return n;
}

/* A header field changed and the checksum made right: refused for what the header says. */
static size_t m_identity(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	uint8_t name_len = b[20];

	switch (below(12)) {
	case 0: /* magic */
		b[below(8)] ^= 1 + below(255);
		*e = (struct expect){ AT_WRITE, EINVAL };
		break;
	case 1: /* format version */
		put_le(b + 8, 2 + below(100), 2);
		*e = (struct expect){ AT_WRITE, EOPNOTSUPP };
		break;
	case 2: /* header length */
		put_le(b + 10, below(2) ? 0 : 121 + below(100), 2);
		*e = (struct expect){ AT_WRITE, EINVAL };
		break;
	case 3: /* device kind */
		put_le(b + 12, 2 + below(1000), 2);
		*e = (struct expect){ AT_WRITE, EPROTO };
		break;
	case 4: /* header flags */
		put_le(b + 14, 1 << below(16), 2);
		*e = (struct expect){ AT_WRITE, EOPNOTSUPP };
		break;
	case 5: /* persona version */
		put_le(b + 16, get_le(b + 16, 4) ^ (1 + below(0xffff)), 4);
		*e = (struct expect){ AT_WRITE, EPROTO };
		break;
	case 6: /* name length: longer takes in a zero byte, another name */
		b[20] = name_len + 1;
		*e = (struct expect){ AT_WRITE, name_len < 64 ? EPROTO : EINVAL };
		break;
	case 7: /* name length out of range, or shorter (a name byte left in the padding) */
		b[20] = below(3) == 0 ? 0 : below(2) ? 65 + below(190) : name_len - 1;
		*e = (struct expect){ AT_WRITE, EINVAL };
		break;
	case 8: /* reserved */
		b[21 + below(3)] = 1 + below(255);
		*e = (struct expect){ AT_WRITE, EINVAL };
		break;
	case 9: /* digest */
		b[24 + below(32)] ^= 1 + below(255);
		*e = (struct expect){ AT_WRITE, EPROTO };
		break;
	case 10: /* a name byte, still a name */
		b[56 + below(name_len)] ^= 0x20;
		*e = (struct expect){ AT_WRITE, EPROTO };
		break;
	default: /* the name's padding (or, for a 64-byte name, its length) */
		if (name_len < 64)
			b[56 + name_len + below(64 - name_len)] = 1 + below(255);
		else
			b[20] = 0;
		*e = (struct expect){ AT_WRITE, EINVAL };
		break;
	}
	fix_sum(b, n);
	return n;
}

/* A well-formed stream whose edu record holds a state edu cannot be in: refused at STOP. */
static size_t m_edu_record(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	uint8_t *p = b + l->at[1] + REC_HDR;

	switch (below(9)) {
	case 0: /* unknown flag */
		put_le(p, get_le(p, 4) | 4 << below(29), 4);
		break;
	case 1: /* status bits other than IRQ-on-factorial */
		put_le(p + 12, get_le(p + 12, 4) | (1 << below(7)), 4);
		break;
	case 2: /* unknown DMA command bits */
		put_le(p + 20, 8 << below(28), 4);
		break;
	case 3: /* a transfer running */
		put_le(p + 20, get_le(p + 20, 4) | EDU_DMA_START, 4);
		break;
	case 4: /* a held command without its start bit, or with unknown bits */
		put_le(p + 48, below(2) ? 2 + 4 * below(2) : EDU_DMA_START | 8 << below(28), 4);
		break;
	case 5: /* reserved */
		put_le(p + 52, 1 + below(0xffff), 4);
		break;
	case 6:
		p[56 + below(8)] = 1 + below(255);
		break;
	case 7: /* liveness without its flag */
		put_le(p, get_le(p, 4) & ~1U, 4);
		put_le(p + 4, 1 + below(0xffff), 4);
		break;
	default: /* factorial without its flag */
		put_le(p, get_le(p, 4) & ~2U, 4);
		put_le(p + 8, 1 + below(0xffff), 4);
		break;
	}
	fix_sum(b, n);
	*e = (struct expect){ AT_STOP, EINVAL };
	return n;
}

/* Config registers the persona cannot reach (read-only bits off their values): refused at STOP. */
static size_t m_config_record(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	uint8_t *p = b + l->at[0] + REC_HDR;
	size_t i;

	for (i = 0; i < l->len[0]; i++)
		p[i] = below(2) ? 0xff : rnd();
	fix_sum(b, n);
	*e = (struct expect){ AT_STOP, EINVAL };
	return n;
}

static size_t m_missing_record(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	int r = below(2);
	size_t len = l->at[r + 1] - l->at[r];

	memmove(b + l->at[r], b + l->at[r + 1], n - l->at[r + 1]);
	n -= len;
	fix_sum(b, n);
	*e = (struct expect){ AT_STOP, EINVAL };
	return n;
}

static size_t m_unknown_mandatory(uint8_t *b, size_t n, const struct layout *l,
				  struct expect *e)
{
	uint8_t rec[REC_HDR + 64];
	size_t len = below(65), i;
	uint32_t tag;

	do
		tag = rnd();
	while (tag == TAG_END || tag == TAG_CONFIG || tag == TAG_EDU);
	put_le(rec, tag, 4);
	put_le(rec + 4, 1, 4);
	put_le(rec + 8, len, 8);
	for (i = 0; i < len; i++)
		rec[REC_HDR + i] = rnd();
	n = insert(b, n, l->at[below(l->n)], rec, REC_HDR + len);
	fix_sum(b, n);
	*e = (struct expect){ AT_WRITE, EOPNOTSUPP };
	return n;
}

static size_t m_record_flags(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	uint8_t *f = b + l->at[below(l->n)] + 4;

	put_le(f, get_le(f, 4) | 2 << below(31), 4);
	fix_sum(b, n);
	*e = (struct expect){ AT_WRITE, EOPNOTSUPP };
	return n;
}

/* Not a stream at all. */
static size_t m_garbage(uint8_t *b, size_t n, const struct layout *l, struct expect *e)
{
	size_t len = 1 + below(2 * n), i;

	for (i = 0; i < len; i++)
		b[i] = rnd();
	*e = (struct expect){ ANYWHERE, 0 };
	return len;
}

static struct mutator mutators[] = {
	{ "header bit flip", 1400, m_flip_header },
	{ "record header bit flip", 1200, m_flip_record_header },
	{ "payload bit flip", 1200, m_flip_payload },
	{ "checksum bit flip", 500, m_flip_checksum },
	{ "scribble", 700, m_scribble },
	{ "truncation", 250, m_truncate },
	{ "appended garbage", 500, m_append },
	{ "records swapped", 200, m_swap_records },
	{ "record duplicated", 300, m_duplicate_record },
	{ "length field", 700, m_length },
	{ "identity field (checksum fixed)", 1300, m_identity },
	{ "edu record invalid (checksum fixed)", 150, m_edu_record },
	{ "config record unreachable (checksum fixed)", 50, m_config_record },
	{ "record missing (checksum fixed)", 50, m_missing_record },
	{ "unknown mandatory record (checksum fixed)", 300, m_unknown_mandatory },
	{ "record flags (checksum fixed)", 200, m_record_flags },
	{ "garbage", 100, m_garbage },
};

#define NMUT (sizeof(mutators) / sizeof(mutators[0]))

static struct mutator *pick(void)
{
	unsigned int total = 0, r, i;

	for (i = 0; i < NMUT; i++)
		total += mutators[i].weight;
	r = below(total);
	for (i = 0; i < NMUT; i++) {
		if (r < mutators[i].weight)
			return &mutators[i];
		r -= mutators[i].weight;
	}
	return &mutators[0];
}

/*
 * Mutated and truncated streams, one per resuming session on B: every one refused, by a write
 * (leaving RESUMING then fails with EINVAL, the device unchanged in STOP: no write was
 * accepted) or at
 * RESUMING -> STOP (ERROR, then a reset). B's state is checked unchanged throughout; at the end
 * the valid stream resumes and B's state is A's.
 */
TEST_F_TIMEOUT(fault, stream_fuzz, 600)
{
	static uint8_t bad[2 * STREAM_MAX];
	const char *env_seed = pvp_env("PVP_SEED"), *env_n = pvp_env("PVP_STREAMS");
	uint64_t seed = env_seed ? strtoull(env_seed, NULL, 0) : 0x5eed0007;
	unsigned long total = env_n ? strtoul(env_n, NULL, 0) : 10000, i;
	unsigned long resets = 0, chunked = 0;
	uint32_t live_b, st = 0;
	struct stream before;
	struct layout l;
	double t0;
	unsigned int k;

	rng = seed;
	TH_LOG("seed %#llx (PVP_SEED), %lu streams (PVP_STREAMS)", (unsigned long long)seed,
	       total);
	ASSERT_EQ(0, set_regs(self->a.devfd, self->bar_a, 0x0a0a0000));
	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	ASSERT_EQ(0, layout_of(self->s.b, self->s.len, &l));
	/* The checksum forged below is the driver's. */
	ASSERT_EQ(get_le(self->s.b + self->s.len - 8, 8), stream_sum(self->s.b, self->s.len - 8));
	ASSERT_EQ(0, set_regs(self->b.devfd, self->bar_b, 0x0b0b0000));
	ASSERT_EQ(0, save(self->b.devfd, &before));
	live_b = rd(self->b.devfd, self->bar_b, EDU_LIVE);
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP, NULL));

	t0 = now();
	for (i = 0; i < total; i++) {
		struct mutator *m = pick();
		struct expect e;
		bool accepted = false, chunks = below(50) == 0;
		int werr = 0, serr, fd;
		size_t n, done = 0;

		memcpy(bad, self->s.b, self->s.len);
		n = m->fn(bad, self->s.len, &l, &e);
		m->count++;
		ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &fd))
			TH_LOG("stream %lu", i);
		/* One write, or (1 in 50) random pieces. */
		chunked += chunks;
		while (done < n && !werr) {
			size_t want = chunks ? 1 + below(300) : n - done;
			ssize_t w = write(fd, bad + done, want < n - done ? want : n - done);

			if (w <= 0) {
				werr = w < 0 ? errno : EIO;
				break;
			}
			accepted = true;
			done += w;
		}
		serr = -pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP, NULL);
		close(fd);
		ASSERT_TRUE(werr || serr)
			TH_LOG("stream %lu (%s, %zu bytes) accepted", i, m->name, n);
		if (werr) {
			m->at_write++;
			ASSERT_TRUE(stream_errno(werr))
				TH_LOG("stream %lu (%s): write %s", i, m->name, strerror(werr));
		} else {
			m->at_stop++;
		}
		if (!chunks && e.where != ANYWHERE) {
			EXPECT_EQ(e.where == AT_WRITE, werr != 0)
				TH_LOG("stream %lu (%s, %zu bytes): write %s, stop %s", i, m->name,
				       n, strerror(werr), strerror(serr));
			if (e.err && e.where == AT_WRITE)
				EXPECT_EQ(e.err, werr) TH_LOG("stream %lu (%s): %s", i, m->name,
							       strerror(werr));
			if (e.err && e.where == AT_STOP)
				EXPECT_EQ(e.err, serr) TH_LOG("stream %lu (%s): %s", i, m->name,
							       strerror(serr));
		}
		ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
		if (accepted) {
			/* Some bytes were accepted, the stream was not: ERROR until a reset. */
			ASSERT_TRUE(serr) TH_LOG("stream %lu (%s) accepted", i, m->name);
			ASSERT_TRUE(stream_errno(serr))
				TH_LOG("stream %lu (%s): stop %s", i, m->name, strerror(serr));
			ASSERT_EQ(VFIO_DEVICE_STATE_ERROR, st) TH_LOG("stream %lu", i);
			ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
			ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP, NULL));
			resets++;
		} else {
			/*
			 * Refused at its first write: nothing was accepted, so leaving RESUMING
			 * fails (no data) and nothing changes: the device is in STOP.
			 */
			ASSERT_EQ(EINVAL, serr) TH_LOG("stream %lu (%s): stop %s", i, m->name,
						       strerror(serr));
			ASSERT_EQ(VFIO_DEVICE_STATE_STOP, st) TH_LOG("stream %lu", i);
		}
		ASSERT_EQ(live_b, rd(self->b.devfd, self->bar_b, EDU_LIVE))
			TH_LOG("stream %lu (%s) changed the device", i, m->name);
		if (i % 1000 == 999) {
			/* Nothing reached the device or its shadow. */
			ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
			ASSERT_EQ(0, save(self->b.devfd, &self->t));
			ASSERT_TRUE(same_state(&before, &self->t)) TH_LOG("after stream %lu", i);
			ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP, NULL));
		}
	}
	TH_LOG("%lu streams refused in %.1f s: %lu in pieces, %lu resets after ERROR", total,
	       now() - t0, chunked, resets);
	for (k = 0; k < NMUT; k++)
		TH_LOG("  %-44s %5u: %5u at write, %5u at RESUMING->STOP", mutators[k].name,
		       mutators[k].count, mutators[k].at_write, mutators[k].at_stop);

	/* The valid stream after all that: accepted, and B's state is A's. */
	ASSERT_EQ(0, resume(self->b.devfd, &self->s, 1 + below(1000)));
	ASSERT_EQ(0, save(self->b.devfd, &self->t));
	EXPECT_TRUE(same_state(&self->s, &self->t));
	EXPECT_EQ(~0x0a0a0000U, rd(self->b.devfd, self->bar_b, EDU_LIVE));
}

/*
 * With another persona on B (PVP_MISMATCH names how it differs): B refuses the stream at its
 * first write, the header A offers in PRE_COPY, with EPROTO; A stays in PRE_COPY and returns to
 * RUNNING with its state; B, which accepted nothing, fails to leave RESUMING (no data) and is
 * left in STOP unchanged.
 */
TEST_F(fault, persona_mismatch)
{
	const char *kind = pvp_env("PVP_MISMATCH");
	uint64_t initial = 0, dirty = 0;
	uint32_t va = 0x0c0c0000, vb = 0x0d0d0000, st = 0;
	uint8_t hdr[HDR_LEN];
	ssize_t n;
	int fd, rfd;

	if (!kind)
		SKIP(return, "PVP_MISMATCH unset: B has A's persona");
	TH_LOG("B's persona differs in its %s", kind);
	ASSERT_EQ(0, set_regs(self->a.devfd, self->bar_a, va));
	ASSERT_EQ(0, set_regs(self->b.devfd, self->bar_b, vb));
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	n = pvp_read_all(fd, hdr, sizeof(hdr), 4096);
	ASSERT_EQ(HDR_LEN, n);

	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	EXPECT_EQ(-1, write(rfd, hdr, sizeof(hdr)));
	EXPECT_EQ(EPROTO, errno) TH_LOG("first write: %s", strerror(errno));
	close(rfd);
	/* Nothing accepted: leaving RESUMING fails, nothing applied, B in STOP; then RUNNING. */
	EXPECT_EQ(-EINVAL, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP, st);
	EXPECT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(~vb, rd(self->b.devfd, self->bar_b, EDU_LIVE));

	ASSERT_EQ(0, pvp_mig_get(self->a.devfd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_PRE_COPY, st);
	ASSERT_EQ(0, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
	EXPECT_EQ(0, initial);
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	close(fd);
	EXPECT_EQ(~va, rd(self->a.devfd, self->bar_a, EDU_LIVE));
	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	EXPECT_EQ(va, get_le(self->s.b + self->s.edu + 4, 4));
	EXPECT_EQ(0, memcmp(self->s.b, hdr, HDR_LEN));
}

/*
 * The kernel log from now on (/dev/kmsg, from its end): kmsg_open() before the code under test,
 * kmsg_find() after it returns the first new record containing one of @pats (NULL-terminated),
 * copied into @out, or NULL. Records lost to a wrapped buffer (EPIPE) are skipped.
 */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

static const char *kmsg_find(int fd, const char *const *pats, char *out, size_t len)
{
	char rec[2048];
	const char *const *p;
	ssize_t n;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			return NULL;
		rec[n] = 0;
		for (p = pats; *p; p++) {
			if (strstr(rec, *p)) {
				snprintf(out, len, "%s", rec);
				return out;
			}
		}
	}
}

/* Reports a kernel log check of the records since kmsg_open() fails on. */
static const char *const kernel_reports[] = {
	"WARNING:", "BUG:", "Oops", "KASAN", "UBSAN", "possible circular locking",
	"possible recursive locking", "inconsistent lock state", "sleeping function called",
	NULL,
};

#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
/* Offset of the IRQ status in the edu record's payload. */
#define EDU_REC_IRQ 16

/* Sets or clears memory decoding (COMMAND bit 1) through the config region: 0 or -errno. */
static int mem_decoding(int devfd, bool on)
{
	uint64_t cfg, cfg_size;
	uint16_t cmd = 0;
	int err = pvp_config_size(devfd, &cfg, &cfg_size);

	if (err)
		return err;
	if (pread(devfd, &cmd, 2, cfg + 4) != 2)
		return -EIO;
	cmd = on ? cmd | 0x2 : cmd & ~0x2;
	return pwrite(devfd, &cmd, 2, cfg + 4) == 2 ? 0 : -EIO;
}

/*
 * C3: requests from ERROR are refused without the kernel's helper being asked: it WARN_ONs for
 * ERROR as the current state (vfio_mig_get_next_state()), so every request was a WARNING.
 */
TEST_F(fault, C3_error_row_no_warning)
{
	char rec[2048];
	uint32_t st = 0;
	int kfd, to, fd;

	kfd = kmsg_open();
	ASSERT_LE(0, kfd);
	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	enter_error(_metadata, self->b.devfd, &self->s, false, &fd);
	for (to = 0; to < NSTATES; to++) {
		EXPECT_EQ(-EINVAL, pvp_mig_set(self->b.devfd, to, NULL)) TH_LOG("ERROR -> %s",
									      names[to]);
		ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
		EXPECT_EQ(VFIO_DEVICE_STATE_ERROR, st);
	}
	close(fd);
	EXPECT_EQ(0, pvp_device_reset(self->b.devfd));
	EXPECT_EQ(NULL, kmsg_find(kfd, kernel_reports, rec, sizeof(rec)))
		TH_LOG("kernel log: %s", rec);
	close(kfd);
}

/*
 * C2: a data fd open across an unbind does not keep the vfio device: the function rebinds and
 * gets its vfio cdev index back (the old device was released at remove, freeing its index and
 * leaving its device set), the new device works, and the old fd fails every call with ENODEV
 * without touching the freed device. Nothing in the kernel log (KASAN on the debug kernel).
 */
TEST_F(fault, C2_unbind_with_data_fd_open)
{
	char before[64], after[64], rec[2048];
	uint64_t initial, dirty;
	uint8_t buf[64];
	int kfd, fd;

	kfd = kmsg_open();
	ASSERT_LE(0, kfd);
	ASSERT_EQ(0, pvp_cdev_name(self->bdf_b, before, sizeof(before)));
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	ASSERT_EQ(16, read(fd, buf, 16));
	pvp_dev_close(&self->b);
	ASSERT_EQ(0, pvp_unbind(self->bdf_b));
	/* The old fd after remove: no device behind it. */
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-ENODEV, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
	ASSERT_EQ(0, pvp_bind(self->bdf_b, "persona-vfio-pci"));
	ASSERT_EQ(0, pvp_cdev_name(self->bdf_b, after, sizeof(after)));
	EXPECT_STREQ(before, after) TH_LOG("the unbound device still holds %s", before);
	ASSERT_EQ(0, pvp_dev_open(self->bdf_b, &self->b));
	ASSERT_EQ(0, bar_of(self->b.devfd, &self->bar_b));
	ROUNDTRIPS();
	EXPECT_EQ(-1, read(fd, buf, sizeof(buf)));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-ENODEV, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
	close(fd);
	EXPECT_EQ(NULL, kmsg_find(kfd, kernel_reports, rec, sizeof(rec)))
		TH_LOG("kernel log: %s", rec);
	close(kfd);
}

/*
 * C1: a save with memory decoding off. The guest cleared decoding (its COMMAND register); the
 * save must still record the device as it is, not what a BAR that does not decode reads as
 * ("idle, no interrupt pending"): the driver turns decoding on for its own accesses, under
 * vfio-pci-core's memory_lock, as the core does for the MSI-X table, and puts the guest's
 * COMMAND back. So STOP_COPY succeeds, the stream has the pending interrupt, and decoding is
 * still off afterwards.
 */
TEST_F(fault, C1_save_with_memory_decoding_off)
{
	uint64_t cfg, cfg_size;
	uint16_t cmd = 0;
	struct layout l;
	uint32_t st = 0;
	int err, fd = -1;
	ssize_t n = -1;

	ASSERT_EQ(0, set_regs(self->b.devfd, self->bar_b, 0x12120000));
	ASSERT_EQ(0, wr(self->b.devfd, self->bar_b, EDU_IRQ_ACK, 0xffffffff, 4));
	ASSERT_EQ(0, wr(self->b.devfd, self->bar_b, EDU_IRQ_RAISE, 0x100, 4));
	ASSERT_EQ(0x100, rd(self->b.devfd, self->bar_b, EDU_IRQ_STATUS));
	ASSERT_EQ(0, mem_decoding(self->b.devfd, false));
	err = pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd);
	EXPECT_EQ(0, err) TH_LOG("STOP_COPY with memory decoding off: %s", strerror(-err));
	if (!err) {
		n = pvp_read_all(fd, self->t.b, sizeof(self->t.b), 4096);
		close(fd);
	}
	ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
	ASSERT_LT(0, n);
	ASSERT_EQ(0, layout_of(self->t.b, n, &l));
	ASSERT_EQ(3, l.n);
	EXPECT_EQ(0x100, get_le(self->t.b + l.at[1] + REC_HDR + EDU_REC_IRQ, 4))
		TH_LOG("the saved IRQ status is not the device's");
	/* The guest's COMMAND is as it left it. */
	ASSERT_EQ(0, pvp_config_size(self->b.devfd, &cfg, &cfg_size));
	ASSERT_EQ(2, pread(self->b.devfd, &cmd, 2, cfg + 4));
	EXPECT_FALSE(cmd & 0x2);
	ASSERT_EQ(0, mem_decoding(self->b.devfd, true));
	if (st == VFIO_DEVICE_STATE_ERROR)
		ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, wr(self->b.devfd, self->bar_b, EDU_IRQ_ACK, 0xffffffff, 4));
	ROUNDTRIPS();
}

/*
 * C5: no lock a reset path waits for is held across a user copy. The reset path (memory_lock
 * held for write by VFIO_DEVICE_RESET, then reset_done) ends the device's sessions; a page fault
 * on a vfio BAR mapping takes memory_lock under mmap_lock; if a data fd's read() or write()
 * held the session's lock across copy_to_user()/copy_from_user() (mmap_lock), lockdep sees the
 * cycle memory_lock -> session -> mmap_lock -> memory_lock, the deadlock of a data fd read into
 * a BAR mapping of a device a bus reset covers. Needs PVP_BDF_NOMIG (a mappable BAR0).
 */
TEST_F(fault, C5_no_session_lock_across_user_copies)
{
	const char *nomig = pvp_env("PVP_BDF_NOMIG");
	char stats[8192], rec[2048];
	uint64_t bar = 0;
	uint32_t flags = 0;
	struct pvp_dev n;
	int kfd, fd, p[2], lfd;
	uint8_t buf[256];
	ssize_t len;
	void *map;

	if (!nomig)
		SKIP(return, "PVP_BDF_NOMIG names no function with a mappable BAR0");
	lfd = open("/proc/lockdep_stats", O_RDONLY);
	if (lfd < 0)
		SKIP(return, "no lockdep (/proc/lockdep_stats)");
	len = read(lfd, stats, sizeof(stats) - 1);
	close(lfd);
	stats[len > 0 ? len : 0] = 0;
	if (!strstr(stats, "debug_locks:") ||
	    !strtoul(strstr(stats, "debug_locks:") + strlen("debug_locks:"), NULL, 10))
		SKIP(return, "lockdep is off (an earlier report turned it off)");
	kfd = kmsg_open();
	ASSERT_LE(0, kfd);

	/* mmap_lock -> memory_lock: a kernel-mode fault on a vfio BAR mapping. */
	ASSERT_EQ(0, pvp_dev_open(nomig, &n));
	ASSERT_EQ(0, pvp_region_offset(n.devfd, VFIO_PCI_BAR0_REGION_INDEX, &bar, &flags));
	ASSERT_TRUE(flags & VFIO_REGION_INFO_FLAG_MMAP);
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, n.devfd, bar);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, pipe(p));
	EXPECT_EQ(4, write(p[1], map, 4));
	close(p[0]);
	close(p[1]);
	munmap(map, 4096);
	pvp_dev_close(&n);

	/* session -> mmap_lock (a data fd's read and write), memory_lock -> session (a reset). */
	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd));
	EXPECT_EQ(100, read(fd, buf, 100));
	EXPECT_EQ(0, pvp_device_reset(self->b.devfd));
	close(fd);
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &fd));
	EXPECT_EQ(100, write(fd, self->s.b, 100));
	EXPECT_EQ(0, pvp_device_reset(self->b.devfd));
	close(fd);

	EXPECT_EQ(NULL, kmsg_find(kfd, kernel_reports, rec, sizeof(rec)))
		TH_LOG("kernel log: %s", rec);
	close(kfd);
	ROUNDTRIPS();
}

/* VFIO_DEVICE_FEATURE SET of @feature with @len bytes of @data: 0 or -errno. */
static int feature_set(int devfd, uint32_t feature, const void *data, size_t len)
{
	uint64_t buf[(sizeof(struct vfio_device_feature) + 64) / 8] = {};
	struct vfio_device_feature *f = (void *)buf;

	if (len > 64)
		return -EINVAL;
	f->argsz = sizeof(*f) + len;
	f->flags = VFIO_DEVICE_FEATURE_SET | feature;
	memcpy(f->data, data, len);
	return ioctl(devfd, VFIO_DEVICE_FEATURE, f) ? -errno : 0;
}

/* The function's runtime PM status (sysfs power/runtime_status) is @want: waits up to 5 s. */
static bool runtime_status_is(const char *bdf, const char *want)
{
	char path[256], st[64];
	int i;

	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/power/runtime_status", bdf);
	for (i = 0; i < 500; i++) {
		if (!pvp_read_file(path, st, sizeof(st)) && !strcmp(st, want))
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * C6: a trapped BAR0 write wakes a device in low power, as vfio-pci's region accesses do
 * (pm_runtime_resume_and_get()): after LOW_POWER_ENTRY_WITH_WAKEUP the write resumes the device,
 * which signals the wake-up eventfd and leaves low power, and the write reaches the device.
 */
TEST_F(fault, C6_trapped_write_wakes_low_power)
{
	struct vfio_device_low_power_entry_with_wakeup lp = {};
	uint64_t cnt = 0;
	int efd;

	efd = eventfd(0, EFD_NONBLOCK);
	ASSERT_LE(0, efd);
	lp.wakeup_eventfd = efd;
	ASSERT_EQ(0, feature_set(self->b.devfd, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
				 &lp, sizeof(lp)));
	if (!runtime_status_is(self->bdf_b, "suspended")) {
		feature_set(self->b.devfd, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0);
		close(efd);
		SKIP(return, "the function did not runtime-suspend (no runtime PM?)");
	}
	/* No ioctl and no other region access before the write: they would wake it. */
	EXPECT_EQ(0, wr(self->b.devfd, self->bar_b, EDU_LIVE, 0x6c6c0000, 4));
	EXPECT_EQ(8, read(efd, &cnt, 8)) TH_LOG("the write did not wake the device");
	EXPECT_EQ(~0x6c6c0000U, rd(self->b.devfd, self->bar_b, EDU_LIVE));
	EXPECT_EQ(0, feature_set(self->b.devfd, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0));
	close(efd);
	ROUNDTRIPS();
}

/*
 * C7: the saved state holds what the device took, not what the user wrote: edu ignores writes
 * to the DMA registers while a transfer runs, so such a write must not reach the stream (a
 * destination would otherwise restore a value the source never held).
 */
TEST_F(fault, C7_ignored_write_not_saved)
{
	uint8_t *buf;
	uint16_t cmd = 0;
	uint64_t cfg, cfg_size;
	uint32_t dst;
	int fd = self->a.devfd;

	buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 0x5a, 4096);
	ASSERT_EQ(0, pvp_ioas_map(self->a.iommufd, self->a.ioas_id, buf, 4096, DMA_IOVA));
	ASSERT_EQ(0, pvp_config_size(fd, &cfg, &cfg_size));
	ASSERT_EQ(2, pread(fd, &cmd, 2, cfg + 4));
	cmd |= 0x6;
	ASSERT_EQ(2, pwrite(fd, &cmd, 2, cfg + 4));
	ASSERT_EQ(0, wait_clear(fd, self->bar_a, EDU_DMA_CMD, EDU_DMA_START));
	/* RAM -> edu: edu's transfer takes 100 ms; the write to 0x88 right after is ignored. */
	ASSERT_EQ(0, dma_regs(fd, self->bar_a, DMA_IOVA, EDU_BUF));
	ASSERT_EQ(0, wr(fd, self->bar_a, EDU_DMA_CMD, EDU_DMA_START, 4));
	ASSERT_EQ(0, wr(fd, self->bar_a, EDU_DMA_DST, EDU_BUF + 0x800, 8));
	dst = rd(fd, self->bar_a, EDU_DMA_DST);
	ASSERT_EQ(0, wait_clear(fd, self->bar_a, EDU_DMA_CMD, EDU_DMA_START));
	if (dst != EDU_BUF) {
		munmap(buf, 4096);
		SKIP(return, "the transfer ended before the write (0x88 reads %#x)", dst);
	}
	ASSERT_EQ(0, save(fd, &self->s));
	EXPECT_EQ(EDU_BUF, get_le(self->s.b + self->s.edu + 32, 8))
		TH_LOG("saved DMA destination %#llx, the device holds %#llx",
		       (unsigned long long)get_le(self->s.b + self->s.edu + 32, 8), EDU_BUF);
	munmap(buf, 4096);
}

/*
 * C8: leaving RESUMING with no data accepted fails (the uAPI: incomplete data fails the
 * SET_STATE). Nothing was delivered, so nothing was applied: the device is left in STOP (a state
 * on the requested path) with its own state, and goes on from there.
 */
TEST_F(fault, C8_empty_resume_fails)
{
	uint32_t v = 0x0e0e0000, st = 0;
	int fd, err;

	ASSERT_EQ(0, set_regs(self->b.devfd, self->bar_b, v));
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &fd));
	close(fd);
	err = pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP, NULL);
	EXPECT_EQ(-EINVAL, err) TH_LOG("RESUMING -> STOP with nothing written: %s",
				       strerror(-err));
	ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_STOP, st);
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(~v, rd(self->b.devfd, self->bar_b, EDU_LIVE));
	ROUNDTRIPS();
}

/*
 * C10: poll() on a data fd. PRE_COPY: readable while header bytes remain, not readable once
 * they are read (read() would say ENOMSG), readable again when STOP_COPY makes the rest of the
 * stream available, and still at its end (EOF). A resuming fd is writable.
 */
TEST_F(fault, C10_poll_data_fd)
{
	struct pollfd p = { .events = POLLIN };
	uint8_t *b = self->s.b;
	ssize_t n;
	int fd, rfd;

	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	p.fd = fd;
	EXPECT_EQ(1, poll(&p, 1, 0));
	EXPECT_TRUE(p.revents & POLLIN);
	ASSERT_EQ(HDR_LEN, read(fd, b, HDR_LEN));
	EXPECT_EQ(-1, read(fd, b, 16));
	EXPECT_EQ(ENOMSG, errno);
	p.revents = 0;
	EXPECT_EQ(0, poll(&p, 1, 0)) TH_LOG("readable at PRE_COPY's end of data: %#x", p.revents);
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	EXPECT_EQ(1, poll(&p, 1, 0));
	EXPECT_TRUE(p.revents & POLLIN);
	n = pvp_read_all(fd, b + HDR_LEN, STREAM_MAX - HDR_LEN, 4096);
	EXPECT_LT(0, n);
	EXPECT_EQ(1, poll(&p, 1, 0));
	EXPECT_TRUE(p.revents & POLLIN) TH_LOG("not readable at EOF");
	close(fd);
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	p = (struct pollfd){ .fd = rfd, .events = POLLOUT };
	EXPECT_EQ(1, poll(&p, 1, 0));
	EXPECT_TRUE(p.revents & POLLOUT);
	close(rfd);
	ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
}

/* MSI of an edu through an eventfd: 0 or -errno. */
static int msi_eventfd(int devfd, int efd)
{
	uint8_t buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)] = {};
	struct vfio_irq_set *set = (void *)buf;

	set->argsz = sizeof(buf);
	set->flags = efd >= 0 ? VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER :
				VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = VFIO_PCI_MSI_IRQ_INDEX;
	set->count = efd >= 0 ? 1 : 0;
	memcpy(set->data, &efd, sizeof(efd));
	if (efd < 0)
		set->argsz = sizeof(*set);
	return ioctl(devfd, VFIO_DEVICE_SET_IRQS, set) ? -errno : 0;
}

/*
 * C11: a restored pending interrupt is not raised while entering STOP (a stopped device must not
 * interrupt): RESUMING -> STOP loads the state without it (the IRQ status register reads 0 in
 * STOP), and it is raised when the device leaves STOP (there, and signalled, once RUNNING).
 */
TEST_F(fault, C11_no_interrupt_entering_stop)
{
	uint64_t cfg, cfg_size, cnt = 0;
	uint16_t cmd = 0;
	int efd, i, rfd;

	ASSERT_EQ(0, set_regs(self->a.devfd, self->bar_a, 0x0f0f0000));
	ASSERT_EQ(0, wr(self->a.devfd, self->bar_a, EDU_IRQ_ACK, 0xffffffff, 4));
	ASSERT_EQ(0, wr(self->a.devfd, self->bar_a, EDU_IRQ_RAISE, 0x200, 4));
	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	ASSERT_EQ(0, wr(self->a.devfd, self->bar_a, EDU_IRQ_ACK, 0xffffffff, 4));
	ASSERT_EQ(0x200, get_le(self->s.b + self->s.edu + EDU_REC_IRQ, 4));

	ASSERT_EQ(0, wr(self->b.devfd, self->bar_b, EDU_IRQ_ACK, 0xffffffff, 4));
	ASSERT_EQ(0, pvp_config_size(self->b.devfd, &cfg, &cfg_size));
	ASSERT_EQ(2, pread(self->b.devfd, &cmd, 2, cfg + 4));
	cmd |= 0x6;
	ASSERT_EQ(2, pwrite(self->b.devfd, &cmd, 2, cfg + 4));
	efd = eventfd(0, EFD_NONBLOCK);
	ASSERT_LE(0, efd);
	ASSERT_EQ(0, msi_eventfd(self->b.devfd, efd));

	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &rfd));
	ASSERT_EQ(0, pvp_write_all(rfd, self->s.b, self->s.len, 4096));
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_STOP, NULL));
	close(rfd);
	/* Stopped: the interrupt is not raised (the register shows it; delivery is asynchronous). */
	EXPECT_EQ(0, rd(self->b.devfd, self->bar_b, EDU_IRQ_STATUS))
		TH_LOG("the interrupt was raised while entering STOP");
	ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	EXPECT_EQ(0x200, rd(self->b.devfd, self->bar_b, EDU_IRQ_STATUS));
	for (i = 0; i < 300 && read(efd, &cnt, 8) != 8; i++)
		usleep(10000);
	EXPECT_LT(0, cnt) TH_LOG("no interrupt after leaving STOP");
	ASSERT_EQ(0, wr(self->b.devfd, self->bar_b, EDU_IRQ_ACK, 0xffffffff, 4));
	msi_eventfd(self->b.devfd, -1);
	close(efd);
}

/*
 * C9: failed arcs do not flood the kernel log: 64 arcs failing in a row on one device (a refused
 * stream at RESUMING -> STOP, then a reset) log a bounded number of lines, whatever the time they
 * take (the driver logs failures 1, 2, 4, 8, ... of a device, with the count).
 */
TEST_F(fault, C9_failed_arcs_log_bounded)
{
	char rec[2048];
	static const char *const pats[] = { "migration: arc", NULL };
	int kfd, i, lines = 0, fd;

	ASSERT_EQ(0, save(self->a.devfd, &self->s));
	kfd = kmsg_open();
	ASSERT_LE(0, kfd);
	for (i = 0; i < 64; i++) {
		enter_error(_metadata, self->b.devfd, &self->s, false, &fd);
		close(fd);
		ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
	}
	while (kmsg_find(kfd, pats, rec, sizeof(rec)))
		if (strstr(rec, self->bdf_b))
			lines++;
	close(kfd);
	TH_LOG("%d lines for 64 failed arcs", lines);
	EXPECT_GE(8, lines);
	EXPECT_LE(1, lines);
	ROUNDTRIPS();
}

/*
 * C9 (and the "resetting" line on every open): a reset of a function bound to the driver
 * logs nothing. The PCI core warns "resetting" for a driver with error handlers but no
 * reset_prepare; every open resets the function, so each open logged a line.
 */
TEST_F(fault, C9_resets_not_logged)
{
	static const char *const pats[] = { "resetting", NULL };
	char rec[2048];
	int kfd, i, lines = 0;

	kfd = kmsg_open();
	ASSERT_LE(0, kfd);
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pvp_device_reset(self->b.devfd));
	pvp_dev_close(&self->b);
	ASSERT_EQ(0, pvp_dev_open(self->bdf_b, &self->b));
	while (kmsg_find(kfd, pats, rec, sizeof(rec)))
		if (strstr(rec, self->bdf_b))
			lines++;
	close(kfd);
	EXPECT_EQ(0, lines) TH_LOG("%d \"resetting\" lines for 3 resets and an open", lines);
}

TEST_HARNESS_MAIN
