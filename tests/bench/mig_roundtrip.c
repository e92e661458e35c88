// SPDX-License-Identifier: GPL-2.0
/*
 * Migration round-trip benchmark over VFIO migration v2, for any device with a vfio cdev:
 *
 *   mig_roundtrip [-n ROUNDS] [-w WARMUP] NAME=/dev/vfio/devices/vfioN [NAME=... ...]
 *
 * Each device is opened the way a VMM does it (cdev, /dev/iommu, an IOAS, bind, attach), must
 * offer VFIO_MIGRATION_STOP_COPY and be RUNNING. One round trip is
 *
 *   RUNNING -> STOP_COPY (the kernel steps through its arcs), read the data fd to EOF, close it,
 *   -> RESUMING (through STOP), write the whole stream back, -> RUNNING (through STOP), close it
 *
 * on the same device. After WARMUP untimed round trips per device, ROUNDS timed ones are run with
 * the devices interleaved (A B A B ...), so every device sees the same guest conditions. One line
 * per device: bytes per stream, median and mean per round trip (and of its save and restore
 * halves), and for every device after the first the ratio against the first (the baseline).
 *
 * A timing is never judged: the exit status is non-zero only when a device cannot be used (not
 * found, no migration, an ioctl or a read/write failed, an empty or varying stream).
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "pvp_util.h"

#define STREAM_MAX (16u << 20)
#define MAX_DEVS 8

struct dev {
	const char *name, *path;
	int devfd, iommufd;
	uint32_t ioas_id, devid, hwpt_id;
	uint64_t flags, size_hint;
	uint8_t *buf;
	size_t bytes;		/* stream length of the first round trip; every one must match */
	uint64_t *total, *save, *restore;	/* ns per timed round trip */
};

static const char *const state_names[] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

static const char *state_name(uint32_t s)
{
	return s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

static void __attribute__((noreturn, format(printf, 2, 3))) fail(const struct dev *d,
								   const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mig_roundtrip: %s (%s): ", d ? d->name : "-", d ? d->path : "-");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* VFIO_DEVICE_FEATURE with a payload of @size bytes in @data (in and out). */
static int feature(int devfd, uint32_t flags, void *data, size_t size)
{
	uint64_t buf[(sizeof(struct vfio_device_feature) + 64 + 7) / 8] = {};
	struct vfio_device_feature *f = (void *)buf;

	if (size > 64)
		return -EINVAL;
	f->argsz = sizeof(*f) + size;
	f->flags = flags;
	memcpy(f->data, data, size);
	if (ioctl(devfd, VFIO_DEVICE_FEATURE, f))
		return -errno;
	memcpy(data, f->data, size);
	return 0;
}

/* Sets the migration state; returns the new data fd, -1 without one, or -errno. */
static int mig_set(int devfd, uint32_t state)
{
	struct vfio_device_feature_mig_state m = { .device_state = state, .data_fd = -1 };
	int err = feature(devfd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			  &m, sizeof(m));

	return err ? err : m.data_fd;
}

static int mig_get(int devfd, uint32_t *state)
{
	struct vfio_device_feature_mig_state m = {};
	int err = feature(devfd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			  &m, sizeof(m));

	*state = m.device_state;
	return err;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

static void dev_open(struct dev *d)
{
	struct vfio_device_feature_migration mig = {};
	struct vfio_device_feature_mig_data_size ds = {};
	uint32_t st = 0;
	int err;

	d->iommufd = pvp_iommufd_open();
	if (d->iommufd < 0)
		fail(d, "open /dev/iommu: %s", strerror(-d->iommufd));
	d->devfd = open(d->path, O_RDWR | O_CLOEXEC);
	if (d->devfd < 0)
		fail(d, "open: %s", strerror(errno));
	err = pvp_ioas_alloc(d->iommufd, &d->ioas_id);
	if (err)
		fail(d, "IOMMU_IOAS_ALLOC: %s", strerror(-err));
	err = pvp_bind_iommufd(d->devfd, d->iommufd, &d->devid);
	if (err)
		fail(d, "VFIO_DEVICE_BIND_IOMMUFD: %s", strerror(-err));
	err = pvp_attach_pt(d->devfd, d->ioas_id, &d->hwpt_id);
	if (err)
		fail(d, "VFIO_DEVICE_ATTACH_IOMMUFD_PT: %s", strerror(-err));
	err = feature(d->devfd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig,
		      sizeof(mig));
	if (err)
		fail(d, "no VFIO migration (VFIO_DEVICE_FEATURE_MIGRATION: %s)", strerror(-err));
	d->flags = mig.flags;
	if (!(d->flags & VFIO_MIGRATION_STOP_COPY))
		fail(d, "migration flags %#llx lack STOP_COPY", (unsigned long long)d->flags);
	err = mig_get(d->devfd, &st);
	if (err)
		fail(d, "get migration state: %s", strerror(-err));
	if (st != VFIO_DEVICE_STATE_RUNNING)
		fail(d, "opened in state %s, not RUNNING", state_name(st));
	err = feature(d->devfd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &ds,
		      sizeof(ds));
	d->size_hint = err ? 0 : ds.stop_copy_length;
	d->buf = malloc(STREAM_MAX);
	if (!d->buf)
		fail(d, "out of memory");
}

static void dev_close(struct dev *d)
{
	close(d->devfd);
	close(d->iommufd);
}

/* One round trip; adds its times when @slot >= 0. */
static void round_trip(struct dev *d, long slot)
{
	uint64_t t0, t1, t2;
	size_t len = 0;
	int fd, err;

	t0 = now_ns();
	fd = mig_set(d->devfd, VFIO_DEVICE_STATE_STOP_COPY);
	if (fd < 0)
		fail(d, "RUNNING -> STOP_COPY: %s", fd == -1 ? "no data fd" : strerror(-fd));
	for (;;) {
		ssize_t n = read(fd, d->buf + len, STREAM_MAX - len);

		if (n < 0)
			fail(d, "read of the STOP_COPY stream at %zu: %s", len, strerror(errno));
		if (n == 0)
			break;
		len += n;
		if (len == STREAM_MAX)
			fail(d, "the stream is longer than %u bytes", STREAM_MAX);
	}
	close(fd);
	t1 = now_ns();
	fd = mig_set(d->devfd, VFIO_DEVICE_STATE_RESUMING);
	if (fd < 0)
		fail(d, "STOP_COPY -> RESUMING: %s", fd == -1 ? "no data fd" : strerror(-fd));
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, d->buf + done, len - done);

		if (n <= 0)
			fail(d, "write of the stream at %zu of %zu: %s", done, len,
			     n ? strerror(errno) : "wrote nothing");
		done += n;
	}
	err = mig_set(d->devfd, VFIO_DEVICE_STATE_RUNNING);
	if (err < -1)
		fail(d, "RESUMING -> RUNNING: %s", strerror(-err));
	if (err >= 0)
		close(err);
	close(fd);
	t2 = now_ns();

	if (len == 0)
		fail(d, "STOP_COPY gave an empty stream");
	if (d->bytes && d->bytes != len)
		fail(d, "the stream changed length between round trips: %zu then %zu bytes",
		     d->bytes, len);
	d->bytes = len;
	if (slot >= 0) {
		d->total[slot] = t2 - t0;
		d->save[slot] = t1 - t0;
		d->restore[slot] = t2 - t1;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median (sorts @v) and mean, in microseconds. */
static void stats(uint64_t *v, long n, double *median, double *mean)
{
	double sum = 0;
	long i;

	qsort(v, n, sizeof(*v), cmp_u64);
	for (i = 0; i < n; i++)
		sum += v[i];
	*median = (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0) / 1000.0;
	*mean = sum / n / 1000.0;
}

static long arg_long(const char *opt, const char *s, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min) {
		fprintf(stderr, "mig_roundtrip: %s wants an integer >= %ld, not '%s'\n", opt, min, s);
		exit(2);
	}
	return v;
}

static void usage(void)
{
	fprintf(stderr, "usage: mig_roundtrip [-n ROUNDS] [-w WARMUP] NAME=/dev/vfio/devices/vfioN "
			"[NAME=...]\n(the first device is the baseline of the ratios)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct dev devs[MAX_DEVS] = {};
	long rounds = 500, warmup = 20, r;
	int ndev = 0, opt, i;
	double base_med = 0, base_mean = 0;

	while ((opt = getopt(argc, argv, "n:w:h")) != -1) {
		switch (opt) {
		case 'n':
			rounds = arg_long("-n", optarg, 1);
			break;
		case 'w':
			warmup = arg_long("-w", optarg, 0);
			break;
		default:
			usage();
		}
	}
	if (optind == argc)
		usage();
	for (; optind < argc; optind++) {
		char *eq = strchr(argv[optind], '=');

		if (!eq || eq == argv[optind] || !eq[1] || ndev == MAX_DEVS) {
			fprintf(stderr, "mig_roundtrip: '%s' is not NAME=CDEV (at most %d devices)\n",
				argv[optind], MAX_DEVS);
			usage();
		}
		*eq = 0;
		devs[ndev].name = argv[optind];
		devs[ndev].path = eq + 1;
		ndev++;
	}

	for (i = 0; i < ndev; i++) {
		struct dev *d = &devs[i];

		dev_open(d);
		d->total = calloc(rounds, sizeof(uint64_t));
		d->save = calloc(rounds, sizeof(uint64_t));
		d->restore = calloc(rounds, sizeof(uint64_t));
		if (!d->total || !d->save || !d->restore)
			fail(d, "out of memory");
	}
	for (i = 0; i < ndev; i++)
		for (r = 0; r < warmup; r++)
			round_trip(&devs[i], -1);
	for (r = 0; r < rounds; r++)
		for (i = 0; i < ndev; i++)
			round_trip(&devs[i], r);
	for (i = 0; i < ndev; i++) {
		struct dev *d = &devs[i];
		uint32_t st = 0;

		if (mig_get(d->devfd, &st) || st != VFIO_DEVICE_STATE_RUNNING)
			fail(d, "left in state %s after the round trips", state_name(st));
	}

	printf("migration round trip RUNNING -> STOP_COPY -> read all -> RESUMING -> write all -> "
	       "RUNNING,\n%ld per device after %ld warm-up, devices interleaved; times in us\n",
	       rounds, warmup);
	for (i = 0; i < ndev; i++) {
		struct dev *d = &devs[i];
		double med, mean, smed, smean, rmed, rmean;

		stats(d->total, rounds, &med, &mean);
		stats(d->save, rounds, &smed, &smean);
		stats(d->restore, rounds, &rmed, &rmean);
		printf("  %-18s %6zu B/stream  median %9.1f  mean %9.1f  (save %.1f, restore %.1f)",
		       d->name, d->bytes, med, mean, smed, rmed);
		if (i == 0) {
			base_med = med;
			base_mean = mean;
			printf("  baseline\n");
		} else {
			printf("  ratio %.2f (median), %.2f (mean) vs %s\n", med / base_med,
			       mean / base_mean, devs[0].name);
		}
		if (d->size_hint && d->size_hint != d->bytes)
			printf("  note: %s announced %llu bytes (MIG_DATA_SIZE), its stream had %zu\n",
			       d->name, (unsigned long long)d->size_hint, d->bytes);
	}
	for (i = 0; i < ndev; i++)
		dev_close(&devs[i]);
	return 0;
}
