// SPDX-License-Identifier: GPL-2.0
/*
 * persona_vfio_fuzz: seeded random sequences over the VFIO surface of persona-vfio-pci devices,
 * run in the test guest (tests/guest/suites/fuzz.sh).
 *
 *   persona_vfio_fuzz [-s SEED] [-t SECONDS] [-n CALLS] [-j] BDF...
 *
 * One thread per BDF (each bound to persona-vfio-pci), each with its own generator seeded from
 * SEED and its index, so one device's sequence is a function of the seed and of what the device
 * answers: `-s SEED -n CALLS BDF` with a single device replays it (several devices interleave
 * by timing; edu's factorial and DMA timing can still change an answer). The calls:
 *   - the config, BAR and descriptor regions through pread/pwrite at odd offsets and sizes,
 *     offsets past the end, unknown region indexes, mmap of every region;
 *   - VFIO_DEVICE_GET_INFO / GET_REGION_INFO / GET_IRQ_INFO with odd indexes and argsz;
 *   - VFIO_DEVICE_FEATURE: every feature index 0..15 with random GET/SET/PROBE flags and argsz,
 *     migration states (any target, the data fds kept and used), MIG_DATA_SIZE, DMA logging
 *     start/report/stop with random ranges and page sizes (bitmaps in a buffer followed by a
 *     guard page), low power entry (with and without wakeup eventfd) and exit, bus master;
 *   - data fds: read/write of random sizes (random bytes or a real saved stream, whole or cut),
 *     PRECOPY_INFO with random argsz, poll, close;
 *   - VFIO_DEVICE_SET_IRQS on every index with every data/action type, eventfds, odd counts;
 *   - VFIO_DEVICE_ATTACH/DETACH_IOMMUFD_PT with and without VFIO_DEVICE_ATTACH_PASID, random
 *     PASIDs and pt ids; VFIO_DEVICE_IOEVENTFD; GET_PCI_HOT_RESET_INFO;
 *   - resets: VFIO_DEVICE_RESET, VFIO_DEVICE_PCI_HOT_RESET, sysfs reset (each a slot or bus
 *     reset: at most one every RESET_GAP calls per device);
 *   - persona selection through sysfs while open (EBUSY), and now and then closing the device,
 *     selecting a persona (valid, missing, malformed, then auto) and opening it again.
 * It stops after SECONDS (default 120) or CALLS calls, whichever comes first, and prints
 * "seed: S" first and "calls: N" at the end with per-kind counts. It checks what must hold
 * whatever the sequence (GET_INFO on an open device works, the state read back is a state, a
 * read never returns more than asked, a device just reset reads RUNNING) and that no call takes
 * longer than 60 s (a watchdog prints the stuck call and its index and exits 3). Exit status 0,
 * 1 when an invariant failed, 2 on a setup error, 3 on a stuck call.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "edu.h"
#include "pvp_util.h"

#define MAX_DEV 4
#define MAX_DATA_FDS 4
#define NEFD 4
#define STREAM_MAX (64 * 1024)
#define MAP_IOVA 0x100000ULL
#define MAP_LEN (1 << 20)
#define SCRATCH_LEN (2 << 20)
/* Costly calls are spaced by call counts (not time, so a replay takes the same branches). */
#define RESET_GAP 2000
#define REOPEN_GAP 30000

static atomic_long total_calls;
static long max_calls = LONG_MAX;
static double deadline;
static atomic_int stop_all;
static atomic_int invariant_failures;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

enum kind {
	K_CFG_RD, K_CFG_WR, K_BAR_RD, K_BAR_WR, K_DESC_RD, K_REGION_ODD, K_MMAP, K_INFO,
	K_FEATURE_RAND, K_MIG_SET, K_MIG_GET, K_MIG_SIZE, K_LOG_START, K_LOG_REPORT, K_LOG_STOP,
	K_LOW_POWER, K_DATA_READ, K_DATA_WRITE, K_DATA_INFO, K_DATA_POLL, K_DATA_CLOSE, K_IRQS,
	K_PASID, K_RID_PT, K_IOEVENTFD, K_HOT_RESET_INFO, K_RESET, K_PERSONA, K_REOPEN,
	K_RAND_IOCTL, NKINDS
};

static const char *const kind_names[NKINDS] = {
	"config read", "config write", "bar read", "bar write", "descriptor read", "odd region",
	"mmap", "info", "feature (random)", "mig set", "mig get", "mig data size", "log start",
	"log report", "log stop", "low power", "data read", "data write", "precopy info",
	"data poll", "data close", "set irqs", "pasid attach/detach", "rid attach/detach",
	"ioeventfd", "hot reset info", "reset", "persona (open)", "reopen + persona",
	"random ioctl",
};

/* Relative weights: cheap calls dominate, the costly ones (resets, reopen) are also time-gated. */
static const unsigned int weights[NKINDS] = {
	[K_CFG_RD] = 60, [K_CFG_WR] = 30, [K_BAR_RD] = 40, [K_BAR_WR] = 20, [K_DESC_RD] = 20,
	[K_REGION_ODD] = 30, [K_MMAP] = 3, [K_INFO] = 80, [K_FEATURE_RAND] = 80, [K_MIG_SET] = 8,
	[K_MIG_GET] = 60, [K_MIG_SIZE] = 20, [K_LOG_START] = 8, [K_LOG_REPORT] = 15,
	[K_LOG_STOP] = 5, [K_LOW_POWER] = 3, [K_DATA_READ] = 60, [K_DATA_WRITE] = 50,
	[K_DATA_INFO] = 30, [K_DATA_POLL] = 20, [K_DATA_CLOSE] = 5, [K_IRQS] = 20, [K_PASID] = 30,
	[K_RID_PT] = 2, [K_IOEVENTFD] = 10, [K_HOT_RESET_INFO] = 20, [K_RESET] = 2, [K_PERSONA] = 5,
	[K_REOPEN] = 1, [K_RAND_IOCTL] = 60,
};

struct fz {
	int idx;
	const char *bdf;
	uint64_t rng;
	struct pvp_dev d;
	bool open;
	void *map;
	uint8_t *scratch;	/* SCRATCH_LEN bytes, then a PROT_NONE guard page */
	uint64_t region_off[16];
	uint64_t region_size[16];
	uint32_t nregions, desc_index;
	int data_fd[MAX_DATA_FDS];
	int efd[NEFD];
	uint8_t stream[STREAM_MAX];
	size_t stream_len;
	long calls, count[NKINDS], errs[NKINDS];
	double spent[NKINDS];	/* seconds per kind, to keep the costly ones rare */
	long last_reset, last_reopen;
	bool in_error;
	/* watchdog */
	_Atomic double busy_since;
	_Atomic int cur_kind;
	_Atomic long cur_index;
};

static uint64_t rnd(struct fz *f)
{
	uint64_t z = (f->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t below(struct fz *f, uint64_t n)
{
	return n ? rnd(f) % n : 0;
}

static bool chance(struct fz *f, unsigned int pct)
{
	return below(f, 100) < pct;
}

/* A size: mostly small and odd, sometimes big or zero. */
static size_t rsize(struct fz *f)
{
	switch (below(f, 10)) {
	case 0: return 0;
	case 1: return below(f, 4096) + 1;
	case 2: return 1ULL << below(f, 17);
	default: return below(f, 8) + 1;
	}
}

static void invariant(struct fz *f, const char *fmt, ...)
{
	va_list ap;

	printf("INVARIANT FAILED [%s call %ld]: ", f->bdf, f->calls);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	atomic_fetch_add(&invariant_failures, 1);
}

/* Every call into the surface goes through here (counted, watched). */
#define CALL(f, expr)                                                            \
	({                                                                       \
		long __r;                                                        \
		(f)->busy_since = now();                                         \
		__r = (long)(expr);                                              \
		(f)->busy_since = 0;                                             \
		(f)->calls++;                                                    \
		atomic_fetch_add(&total_calls, 1);                               \
		__r;                                                             \
	})

static void close_data_fds(struct fz *f)
{
	int i;

	for (i = 0; i < MAX_DATA_FDS; i++)
		if (f->data_fd[i] >= 0) {
			CALL(f, close(f->data_fd[i]));
			f->data_fd[i] = -1;
		}
}

static void keep_data_fd(struct fz *f, int fd)
{
	int i = below(f, MAX_DATA_FDS);

	if (fd < 0)
		return;
	if (f->data_fd[i] >= 0)
		CALL(f, close(f->data_fd[i]));
	f->data_fd[i] = fd;
}

static int any_data_fd(struct fz *f)
{
	int i = below(f, MAX_DATA_FDS);

	return f->data_fd[i];
}

static int open_dev(struct fz *f)
{
	struct vfio_device_info *di;
	size_t len;
	void *buf;
	uint32_t i;
	int err;

	err = pvp_dev_open(f->bdf, &f->d);
	if (err)
		return err;
	f->calls += 5;
	atomic_fetch_add(&total_calls, 5);
	err = pvp_ioas_map(f->d.iommufd, f->d.ioas_id, f->map, MAP_LEN, MAP_IOVA);
	if (err)
		return err;
	err = pvp_device_info(f->d.devfd, &buf, &len);
	if (err)
		return err;
	di = buf;
	f->nregions = di->num_regions < 16 ? di->num_regions : 16;
	free(buf);
	f->desc_index = 0;
	for (i = 0; i < f->nregions; i++) {
		struct vfio_region_info *ri;

		f->region_off[i] = f->region_size[i] = 0;
		if (pvp_region_info(f->d.devfd, i, &buf, &len))
			continue;
		ri = buf;
		f->region_off[i] = ri->offset;
		f->region_size[i] = ri->size;
		if (i >= VFIO_PCI_NUM_REGIONS && ri->size)
			f->desc_index = i;
		free(buf);
	}
	f->open = true;
	return 0;
}

static void close_dev(struct fz *f)
{
	close_data_fds(f);
	if (f->open)
		pvp_dev_close(&f->d);
	f->open = false;
}

/* A saved stream of this device (for writes that get past the header). */
static void save_stream(struct fz *f)
{
	int fd = -1;
	ssize_t n;

	f->stream_len = 0;
	if (pvp_mig_set(f->d.devfd, VFIO_DEVICE_STATE_RUNNING, NULL) ||
	    pvp_mig_set(f->d.devfd, VFIO_DEVICE_STATE_STOP_COPY, &fd))
		return;
	n = pvp_read_all(fd, f->stream, sizeof(f->stream), 4096);
	close(fd);
	pvp_mig_set(f->d.devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
	if (n > 0)
		f->stream_len = n;
}

static int feature(struct fz *f, uint32_t flags, void *data, size_t len, size_t argsz_delta)
{
	uint8_t buf[sizeof(struct vfio_device_feature) + 512] __attribute__((aligned(8))) = {};
	struct vfio_device_feature *h = (void *)buf;
	long r;

	if (len > 512)
		len = 512;
	h->argsz = sizeof(*h) + len + argsz_delta;
	h->flags = flags;
	if (len)
		memcpy(h->data, data, len);
	r = CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_FEATURE, h));
	if (r)
		return -errno;
	if (len)
		memcpy(data, h->data, len);
	return 0;
}

static uint32_t rstate(struct fz *f)
{
	return chance(f, 95) ? below(f, 8) : rnd(f);
}

static void region_rw(struct fz *f, uint32_t index, bool write, uint8_t *buf)
{
	uint64_t size = f->region_size[index], off;
	size_t len = rsize(f);
	long r;

	if (index == VFIO_PCI_BAR0_REGION_INDEX && chance(f, 60))
		off = below(f, 0x100);
	else if (chance(f, 90))
		off = below(f, size + 16);
	else
		off = rnd(f) % (1ULL << below(f, 40));
	if (len > 4096)
		len = 4096;
	if (write) {
		/* A DMA start only now and then: each costs edu's 100 ms timer and the STOP waits. */
		if (index == VFIO_PCI_BAR0_REGION_INDEX && off <= EDU_DMA_CMD &&
		    off + len > EDU_DMA_CMD && !chance(f, 5))
			return;
		r = CALL(f, pwrite(f->d.devfd, buf, len, f->region_off[index] + off));
	} else {
		r = CALL(f, pread(f->d.devfd, buf, len, f->region_off[index] + off));
	}
	if (r > (long)len)
		invariant(f, "region %u %s of %zu returned %ld", index, write ? "write" : "read",
			  len, r);
}

static void op_info(struct fz *f, uint8_t *buf)
{
	struct vfio_region_info *ri = (void *)buf;
	struct vfio_irq_info *ii = (void *)buf;
	struct vfio_device_info *di = (void *)buf;
	uint32_t argsz = chance(f, 70) ? 4096 : below(f, 64);

	memset(buf, 0, 4096);
	switch (below(f, 4)) {
	case 0:
		di->argsz = argsz;
		if (CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_GET_INFO, di)) && argsz >= sizeof(*di))
			invariant(f, "GET_INFO (argsz %u) failed: %m", argsz);
		break;
	case 1:
	case 2:
		ri->argsz = argsz;
		ri->index = chance(f, 80) ? below(f, 12) : rnd(f);
		CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_GET_REGION_INFO, ri));
		break;
	default:
		ii->argsz = argsz;
		ii->index = chance(f, 80) ? below(f, 6) : rnd(f);
		CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_GET_IRQ_INFO, ii));
		break;
	}
}

static void op_mig_set(struct fz *f)
{
	struct vfio_device_feature_mig_state m = { .device_state = rstate(f), .data_fd = -1 };
	uint32_t st = 99;
	int err;

	/*
	 * From ERROR only now and then: every request there is a kernel WARN today (review
	 * finding C3), and a flood of them would slow everything else down.
	 */
	if (f->in_error && !chance(f, 10)) {
		if (f->calls - f->last_reset > RESET_GAP) {
			f->last_reset = f->calls;
			if (!CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_RESET)))
				f->in_error = false;
		}
		return;
	}

	err = feature(f, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &m,
		      sizeof(m), chance(f, 5) ? below(f, 16) - 8 : 0);
	if (!err)
		keep_data_fd(f, m.data_fd);
	if (!CALL(f, pvp_mig_get(f->d.devfd, &st)) && st > VFIO_DEVICE_STATE_PRE_COPY_P2P)
		invariant(f, "device state %u read back", st);
	f->in_error = st == VFIO_DEVICE_STATE_ERROR;
}

static void op_log_start(struct fz *f)
{
	struct vfio_device_feature_dma_logging_control c = {};
	struct vfio_device_feature_dma_logging_range *r = (void *)(f->scratch + SCRATCH_LEN -
								     300 * sizeof(*r));
	uint32_t i, n = chance(f, 80) ? below(f, 5) + 1 : below(f, 300);

	for (i = 0; i < n && i < 300; i++) {
		r[i].iova = chance(f, 70) ? MAP_IOVA + below(f, 512) * 4096 : rnd(f);
		r[i].length = chance(f, 70) ? (below(f, 64) + 1) * 4096 : rnd(f) >> below(f, 64);
	}
	c.page_size = chance(f, 80) ? 4096 : 1ULL << below(f, 64);
	c.num_ranges = n;
	c.ranges = chance(f, 95) ? (uintptr_t)r : rnd(f);
	feature(f, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, &c, sizeof(c),
		0);
}

static void op_log_report(struct fz *f)
{
	struct vfio_device_feature_dma_logging_report r = {};
	uint64_t off = below(f, SCRATCH_LEN);

	r.iova = chance(f, 70) ? MAP_IOVA + below(f, 256) * 4096 : rnd(f);
	r.length = chance(f, 70) ? (below(f, 256) + 1) * 4096 : rnd(f) >> below(f, 64);
	r.page_size = chance(f, 80) ? 4096 : 1ULL << below(f, 64);
	/* Anywhere in the scratch buffer: a bitmap running past it hits the guard page. */
	r.bitmap = (uintptr_t)(f->scratch + (chance(f, 80) ? off & ~7ULL : off));
	feature(f, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, &r,
		sizeof(r), 0);
}

static void step(struct fz *f, uint8_t *buf);

static void op_low_power(struct fz *f)
{
	struct vfio_device_low_power_entry_with_wakeup w = {
		.wakeup_eventfd = f->efd[below(f, NEFD)],
	};

	int i, n;

	switch (below(f, 3)) {
	case 0:
		feature(f, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0, 0);
		break;
	case 1:
		feature(f, VFIO_DEVICE_FEATURE_SET |
				   VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
			&w, sizeof(w), 0);
		break;
	default:
		feature(f, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0, 0);
		return;
	}
	/*
	 * While in low power every access resumes the device (a D3hot exit, 10 ms) and lets it
	 * suspend again: a few random calls in that state, then out again (most of the time).
	 */
	n = below(f, 8);
	for (i = 0; i < n; i++)
		step(f, f->scratch);
	if (chance(f, 90))
		feature(f, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0, 0);
}

static void op_feature_rand(struct fz *f, uint8_t *buf)
{
	uint32_t flags = below(f, 16) | (uint32_t)below(f, 8) << 16;
	size_t len = below(f, 80);

	if (chance(f, 3))
		flags = rnd(f);
	for (size_t i = 0; i < len; i++)
		buf[i] = chance(f, 50) ? 0 : rnd(f);
	/* Never hand a random pointer for the DMA logging features (they write through it). */
	if ((flags & 0xffff) == VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT ||
	    (flags & 0xffff) == VFIO_DEVICE_FEATURE_DMA_LOGGING_START)
		memset(buf, 0, len);
	/* MIG_DEVICE_STATE's data_fd is an output: -1 in, so a new fd is told apart. */
	if (len >= 8)
		memset(buf + 4, 0xff, 4);
	if (!feature(f, flags, buf, len, chance(f, 10) ? below(f, 32) : 0) &&
	    (flags & 0xffff) == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE &&
	    (flags & VFIO_DEVICE_FEATURE_SET) && len >= 8) {
		int32_t fd;

		memcpy(&fd, buf + 4, 4);
		keep_data_fd(f, fd);
	}
}

static void op_data(struct fz *f, enum kind k, uint8_t *buf)
{
	int fd = any_data_fd(f);
	size_t len = rsize(f);
	long r;

	if (fd < 0)
		return;
	if (len > 65536)
		len = 65536;
	switch (k) {
	case K_DATA_READ:
		r = CALL(f, read(fd, buf, len));
		if (r > (long)len)
			invariant(f, "data fd read of %zu returned %ld", len, r);
		break;
	case K_DATA_WRITE:
		if (f->stream_len && chance(f, 60)) {
			size_t at = chance(f, 50) ? 0 : below(f, f->stream_len);

			len = chance(f, 50) ? f->stream_len - at : below(f, f->stream_len - at + 1);
			memcpy(buf, f->stream + at, len);
			if (chance(f, 20) && len)
				buf[below(f, len)] ^= 1 << below(f, 8);
		} else {
			for (size_t i = 0; i < len && i < 64; i++)
				buf[i] = rnd(f);
		}
		r = CALL(f, write(fd, buf, len));
		if (r > (long)len)
			invariant(f, "data fd write of %zu returned %ld", len, r);
		break;
	case K_DATA_INFO: {
		struct vfio_precopy_info *pi = (void *)buf;

		memset(pi, 0, 64);
		pi->argsz = chance(f, 70) ? sizeof(*pi) : below(f, 64);
		pi->flags = chance(f, 90) ? 0 : rnd(f);
		CALL(f, ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, pi));
		break;
	}
	case K_DATA_POLL: {
		struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };

		CALL(f, poll(&p, 1, 0));
		break;
	}
	default:
		for (int i = 0; i < MAX_DATA_FDS; i++)
			if (f->data_fd[i] == fd) {
				CALL(f, close(fd));
				f->data_fd[i] = -1;
			}
	}
}

static void op_irqs(struct fz *f, uint8_t *buf)
{
	struct vfio_irq_set *s = (void *)buf;
	static const uint32_t data[] = { VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_BOOL,
					 VFIO_IRQ_SET_DATA_EVENTFD };
	static const uint32_t action[] = { VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_UNMASK,
					   VFIO_IRQ_SET_ACTION_TRIGGER };
	uint32_t count = chance(f, 70) ? below(f, 3) : below(f, 40), i, dsz;

	memset(buf, 0, 512);
	s->flags = data[below(f, 3)] | action[below(f, 3)];
	if (chance(f, 3))
		s->flags = rnd(f);
	s->index = chance(f, 90) ? below(f, 6) : rnd(f);
	s->start = chance(f, 85) ? 0 : below(f, 40);
	s->count = count;
	dsz = s->flags & VFIO_IRQ_SET_DATA_EVENTFD ? 4 : s->flags & VFIO_IRQ_SET_DATA_BOOL ? 1 : 0;
	for (i = 0; i < count && i < 100; i++) {
		if (dsz == 4) {
			int32_t e = chance(f, 20) ? -1 : f->efd[below(f, NEFD)];

			memcpy(s->data + 4 * i, &e, 4);
		} else if (dsz == 1) {
			s->data[i] = below(f, 2);
		}
	}
	s->argsz = sizeof(*s) + dsz * count;
	if (chance(f, 5))
		s->argsz = below(f, 512);
	if (s->argsz > 512)
		s->argsz = 512;
	CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_SET_IRQS, s));
}

static void op_pasid(struct fz *f)
{
	static const uint32_t pasids[] = { 0, 1, 2, 0xfffff, 0x100000, 0x80000000, 0xffffffff };
	uint32_t pasid = chance(f, 70) ? pasids[below(f, 7)] : rnd(f);

	if (chance(f, 60)) {
		struct vfio_device_attach_iommufd_pt a = {
			.argsz = sizeof(a),
			.flags = chance(f, 90) ? VFIO_DEVICE_ATTACH_PASID : rnd(f),
			.pt_id = chance(f, 80) ? f->d.ioas_id : chance(f, 50) ? f->d.hwpt_id : rnd(f),
			.pasid = pasid,
		};

		if (chance(f, 5))
			a.argsz = below(f, 32);
		CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a));
	} else {
		struct vfio_device_detach_iommufd_pt d = {
			.argsz = sizeof(d),
			.flags = chance(f, 90) ? VFIO_DEVICE_DETACH_PASID : rnd(f),
			.pasid = pasid,
		};

		/* A RID detach (flags 0) is K_RID_PT's: keep the device attached here. */
		if (!(d.flags & VFIO_DEVICE_DETACH_PASID))
			d.flags = VFIO_DEVICE_DETACH_PASID;
		if (chance(f, 5))
			d.argsz = below(f, 32);
		CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d));
	}
}

static void op_rid_pt(struct fz *f)
{
	struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof(d) };
	struct vfio_device_attach_iommufd_pt a = { .argsz = sizeof(a), .pt_id = f->d.ioas_id };

	/* Detach the RID, maybe do something else detached, attach it back. */
	CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d));
	if (chance(f, 50))
		op_mig_set(f);
	if (CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a)))
		invariant(f, "RID re-attach to the IOAS failed: %m");
	else
		f->d.hwpt_id = a.pt_id;
}

static void op_ioeventfd(struct fz *f)
{
	struct vfio_device_ioeventfd e = {
		.argsz = sizeof(e),
		.flags = 1 << below(f, 4),
		.offset = f->region_off[below(f, f->nregions ?: 1)] + below(f, 0x100),
		.data = rnd(f),
		.fd = chance(f, 80) ? f->efd[below(f, NEFD)] : -1,
	};

	CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_IOEVENTFD, &e));
}

static void op_reset(struct fz *f)
{
	char path[PATH_MAX];
	uint32_t st = 99;
	long r;

	unsigned int how = below(f, 3);

	if (f->calls - f->last_reset < RESET_GAP)
		return;
	f->last_reset = f->calls;
	switch (how) {
	case 0:
		r = CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_RESET));
		break;
	case 1: {
		struct vfio_pci_hot_reset h = { .argsz = sizeof(h) };

		r = CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_PCI_HOT_RESET, &h));
		break;
	}
	default:
		snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/reset", f->bdf);
		r = CALL(f, pvp_write_file(path, "1"));
	}
	if (!r && !pvp_mig_get(f->d.devfd, &st) && st != VFIO_DEVICE_STATE_RUNNING &&
	    f->region_size[VFIO_PCI_BAR0_REGION_INDEX] == 1 << 20)
		invariant(f, "state %u right after a successful reset", st);
}

static const char *const selectors[] = {
	"auto", "edu-identity@1.0", "nope@1.0", "", "@", "x@", "a@1", "a@1.2.3", "../x@1.0",
	"auto\n", "edu-identity@99.99",
};

static void op_persona(struct fz *f)
{
	char path[PATH_MAX], buf[300];
	const char *sel = selectors[below(f, sizeof(selectors) / sizeof(selectors[0]))];

	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/persona", f->bdf);
	if (chance(f, 10)) {
		size_t n = below(f, sizeof(buf) - 1), i;

		for (i = 0; i < n; i++)
			buf[i] = 32 + below(f, 95);
		buf[n] = 0;
		sel = buf;
	}
	CALL(f, pvp_write_file(path, sel));
	if (chance(f, 30))
		CALL(f, pvp_read_file(path, buf, sizeof(buf)));
}

static int op_reopen(struct fz *f)
{
	char path[PATH_MAX];
	int err, i, n = below(f, 3);

	if (f->calls - f->last_reopen < REOPEN_GAP)
		return 0;
	f->last_reopen = f->calls;
	close_dev(f);
	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/persona", f->bdf);
	for (i = 0; i < n; i++)
		CALL(f, pvp_write_file(path, selectors[below(f, 4)]));
	if (CALL(f, pvp_write_file(path, "auto")))
		invariant(f, "selecting auto on the closed device failed: %m");
	err = open_dev(f);
	if (err) {
		invariant(f, "reopen: %s", strerror(-err));
		return err;
	}
	save_stream(f);
	return 0;
}

static void op_rand_ioctl(struct fz *f, uint8_t *buf)
{
	int fd = chance(f, 70) ? f->d.devfd : any_data_fd(f);
	unsigned long nr = VFIO_BASE + below(f, 32);
	unsigned long cmd;

	if (fd < 0)
		fd = f->d.devfd;
	/*
	 * Random argument bytes for the query ioctls only: the ones that install or take fds,
	 * map memory or bind (SET_IRQS, IOEVENTFD, BIND_IOMMUFD, the GFX ones) get zeroes.
	 */
	memset(buf, 0, 256);
	*(uint32_t *)buf = chance(f, 50) ? 256 : below(f, 300);
	if (nr == VFIO_BASE + 7 || nr == VFIO_BASE + 8 || nr == VFIO_BASE + 9 ||
	    nr == VFIO_BASE + 12)
		for (int i = 4; i < 32; i++)
			buf[i] = chance(f, 70) ? 0 : rnd(f);
	cmd = _IO(VFIO_TYPE, nr);
	if (nr == VFIO_BASE + 13 || nr == VFIO_BASE + 11 || nr == VFIO_BASE + 10)
		return; /* resets and SET_IRQS have their own ops */
	CALL(f, ioctl(fd, cmd, buf));
}

static void step_kind(struct fz *f, unsigned int k, uint8_t *buf);

static void step(struct fz *f, uint8_t *buf)
{
	static unsigned int total;
	unsigned int w, k;

	if (!total)
		for (k = 0; k < NKINDS; k++)
			total += weights[k];
	w = below(f, total);
	for (k = 0; k < NKINDS - 1 && w >= weights[k]; k++)
		w -= weights[k];
	f->cur_kind = k;
	f->cur_index = f->calls;
	f->count[k]++;
	double t0 = now();
	step_kind(f, k, buf);
	f->spent[k] += now() - t0;
}

static void step_kind(struct fz *f, unsigned int k, uint8_t *buf)
{
	switch (k) {
	case K_CFG_RD:
	case K_CFG_WR:
		for (size_t i = 0; i < 64; i++)
			buf[i] = rnd(f);
		region_rw(f, VFIO_PCI_CONFIG_REGION_INDEX, k == K_CFG_WR, buf);
		break;
	case K_BAR_RD:
	case K_BAR_WR:
		for (size_t i = 0; i < 64; i++)
			buf[i] = rnd(f);
		region_rw(f, VFIO_PCI_BAR0_REGION_INDEX, k == K_BAR_WR, buf);
		break;
	case K_DESC_RD:
		if (f->desc_index)
			region_rw(f, f->desc_index, chance(f, 5), buf);
		break;
	case K_REGION_ODD: {
		uint32_t idx = below(f, 16);

		if (idx < f->nregions && chance(f, 50))
			region_rw(f, idx, chance(f, 20), buf);
		else
			CALL(f, pread(f->d.devfd, buf, rsize(f) & 0xfff,
				      ((uint64_t)below(f, 1 << 20) << 40) | below(f, 1 << 20)));
		break;
	}
	case K_MMAP: {
		uint32_t idx = below(f, f->nregions ?: 1);
		size_t len = chance(f, 70) ? 4096 : (below(f, 256) + 1) * 4096;
		void *p = mmap(NULL, len, PROT_READ | (chance(f, 50) ? PROT_WRITE : 0), MAP_SHARED,
			       f->d.devfd, f->region_off[idx] + below(f, 4) * 4096);

		f->calls++;
		atomic_fetch_add(&total_calls, 1);
		if (p != MAP_FAILED)
			munmap(p, len);
		break;
	}
	case K_INFO:
		op_info(f, buf);
		break;
	case K_FEATURE_RAND:
		op_feature_rand(f, buf);
		break;
	case K_MIG_SET:
		op_mig_set(f);
		break;
	case K_MIG_GET: {
		uint32_t st = 99;

		if (!CALL(f, pvp_mig_get(f->d.devfd, &st)) && st > 7)
			invariant(f, "device state %u read back", st);
		break;
	}
	case K_MIG_SIZE: {
		uint64_t len;

		CALL(f, pvp_mig_data_size(f->d.devfd, &len));
		break;
	}
	case K_LOG_START:
		op_log_start(f);
		break;
	case K_LOG_REPORT:
		op_log_report(f);
		break;
	case K_LOG_STOP:
		feature(f, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0, 0);
		break;
	case K_LOW_POWER:
		op_low_power(f);
		break;
	case K_DATA_READ:
	case K_DATA_WRITE:
	case K_DATA_INFO:
	case K_DATA_POLL:
	case K_DATA_CLOSE:
		op_data(f, k, buf);
		break;
	case K_IRQS:
		op_irqs(f, buf);
		break;
	case K_PASID:
		op_pasid(f);
		break;
	case K_RID_PT:
		op_rid_pt(f);
		break;
	case K_IOEVENTFD:
		op_ioeventfd(f);
		break;
	case K_HOT_RESET_INFO: {
		struct vfio_pci_hot_reset_info *h = (void *)buf;

		memset(buf, 0, 256);
		h->argsz = chance(f, 70) ? 256 : below(f, 64);
		CALL(f, ioctl(f->d.devfd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, h));
		break;
	}
	case K_RESET:
		op_reset(f);
		break;
	case K_PERSONA:
		op_persona(f);
		break;
	case K_REOPEN:
		op_reopen(f);
		break;
	default:
		op_rand_ioctl(f, buf);
	}
}

static void *run(void *arg)
{
	struct fz *f = arg;
	uint8_t *buf = aligned_alloc(4096, 65536);
	int i, err;

	for (i = 0; i < MAX_DATA_FDS; i++)
		f->data_fd[i] = -1;
	for (i = 0; i < NEFD; i++)
		f->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	f->map = mmap(NULL, MAP_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	f->scratch = mmap(NULL, SCRATCH_LEN + 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!buf || f->map == MAP_FAILED || f->scratch == MAP_FAILED) {
		printf("%s: out of memory\n", f->bdf);
		atomic_store(&stop_all, 2);
		return NULL;
	}
	memset(f->map, 0, MAP_LEN);
	mprotect(f->scratch + SCRATCH_LEN, 4096, PROT_NONE);
	err = open_dev(f);
	if (err) {
		printf("%s: open: %s\n", f->bdf, strerror(-err));
		atomic_store(&stop_all, 2);
		return NULL;
	}
	save_stream(f);
	f->last_reset = f->last_reopen = 0;
	while (!atomic_load(&stop_all) && atomic_load(&total_calls) < max_calls) {
		if (!f->open && op_reopen(f))
			break;
		step(f, buf);
		if ((f->calls & 1023) == 0 && now() > deadline)
			break;
	}
	close_dev(f);
	/* The device is usable after all that: a fresh open and a save. */
	err = open_dev(f);
	if (err) {
		invariant(f, "open after the run: %s", strerror(-err));
	} else {
		f->last_reset = 0;
		pvp_device_reset(f->d.devfd);
		uint64_t mf = 0;

		save_stream(f);
		if (!pvp_mig_flags(f->d.devfd, &mf) && !f->stream_len)
			invariant(f, "no save after the run");
		close_dev(f);
	}
	free(buf);
	return NULL;
}

static struct fz fz[MAX_DEV];
static int ndev;

static void *watchdog(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_all)) {
		for (int i = 0; i < ndev; i++) {
			double b = fz[i].busy_since;

			if (b && now() - b > 60) {
				printf("STUCK: %s: call %ld (%s) has not returned for 60 s\n", fz[i].bdf,
				       (long)fz[i].cur_index, kind_names[fz[i].cur_kind]);
				printf("calls: %ld\n", atomic_load(&total_calls));
				fflush(stdout);
				_exit(3);
			}
		}
		sleep(1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t seed = 0;
	double seconds = 120, t0;
	pthread_t th[MAX_DEV], wd;
	bool have_seed = false;
	int opt, i, k;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "s:t:n:")) != -1) {
		switch (opt) {
		case 's': seed = strtoull(optarg, NULL, 0); have_seed = true; break;
		case 't': seconds = atof(optarg); break;
		case 'n': max_calls = atol(optarg); break;
		default:
			fprintf(stderr, "usage: persona_vfio_fuzz [-s SEED] [-t SECONDS] [-n CALLS] BDF...\n");
			return 2;
		}
	}
	if (optind >= argc || argc - optind > MAX_DEV) {
		fprintf(stderr, "usage: persona_vfio_fuzz [-s SEED] [-t SECONDS] [-n CALLS] BDF... (1-%d)\n",
			MAX_DEV);
		return 2;
	}
	if (!have_seed) {
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		seed = (uint64_t)t.tv_sec * 1000000007ULL ^ t.tv_nsec ^ (uint64_t)getpid() << 32;
	}
	printf("seed: %llu (replay: persona_vfio_fuzz -s %llu -n CALLS %s)\n",
	       (unsigned long long)seed, (unsigned long long)seed, argv[optind]);
	signal(SIGPIPE, SIG_IGN);
	t0 = now();
	deadline = t0 + seconds;
	ndev = argc - optind;
	for (i = 0; i < ndev; i++) {
		fz[i].idx = i;
		fz[i].bdf = argv[optind + i];
		fz[i].rng = seed + 0x1000193ULL * i;
	}
	pthread_create(&wd, NULL, watchdog, NULL);
	for (i = 0; i < ndev; i++)
		pthread_create(&th[i], NULL, run, &fz[i]);
	for (i = 0; i < ndev; i++)
		pthread_join(th[i], NULL);
	if (atomic_load(&stop_all) == 2)
		return 2;
	atomic_store(&stop_all, 1);
	pthread_join(wd, NULL);
	for (i = 0; i < ndev; i++) {
		printf("%s: %ld calls\n", fz[i].bdf, fz[i].calls);
		for (k = 0; k < NKINDS; k++)
			printf("  %-20s %8ld  %6.1f s\n", kind_names[k], fz[i].count[k], fz[i].spent[k]);
	}
	printf("time: %.1f s\n", now() - t0);
	printf("calls: %ld\n", atomic_load(&total_calls));
	return atomic_load(&invariant_failures) ? 1 : 0;
}
