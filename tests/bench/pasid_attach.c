// SPDX-License-Identifier: GPL-2.0
/*
 * PASID attach, replace and detach latency through VFIO_DEVICE_{ATTACH,DETACH}_IOMMUFD_PT:
 *
 *   pasid_attach [-n ROUNDS] [-w WARMUP] [-p PASID] LABEL BDF
 *
 * BDF must have a PASID capability the IOMMU enabled (in the test guest: the PASID fixture on an
 * nvme function) and a driver with a vfio cdev. The device is opened the way a VMM does it
 * for PASIDs (cdev, /dev/iommu, bind, two IOASes each with a paging HWPT allocated with
 * IOMMU_HWPT_ALLOC_PASID, the RID attached to the first). One round:
 *
 *   attach PASID to HWPT 1, replace it with HWPT 2 (a second attach of the same PASID),
 *   detach it
 *
 * each timed. Prints one line per operation with LABEL and the median and mean in ns; the shell
 * around it runs the same program on both drivers, alternating, and forms the ratios. A timing is
 * never judged: the exit status is non-zero only when an ioctl fails.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "pvp_util.h"

static uint64_t now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int attach(int devfd, uint32_t pasid, uint32_t pt)
{
	struct vfio_device_attach_iommufd_pt a = {
		.argsz = sizeof(a), .flags = VFIO_DEVICE_ATTACH_PASID, .pt_id = pt, .pasid = pasid,
	};

	return ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) ? errno : 0;
}

static int detach(int devfd, uint32_t pasid)
{
	struct vfio_device_detach_iommufd_pt d = {
		.argsz = sizeof(d), .flags = VFIO_DEVICE_DETACH_PASID, .pasid = pasid,
	};

	return ioctl(devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d) ? errno : 0;
}

static int hwpt_alloc(int iommufd, uint32_t dev_id, uint32_t ioas, uint32_t *out)
{
	struct iommu_hwpt_alloc a = {
		.size = sizeof(a), .flags = IOMMU_HWPT_ALLOC_PASID, .dev_id = dev_id, .pt_id = ioas,
		.data_type = IOMMU_HWPT_DATA_NONE,
	};

	if (ioctl(iommufd, IOMMU_HWPT_ALLOC, &a))
		return -errno;
	*out = a.out_hwpt_id;
	return 0;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const char *const ops[] = { "attach", "replace", "detach" };
	int rounds = 2000, warmup = 100, opt, r, k, err;
	uint32_t pasid = 1, ioas[2], hwpt[2], devid;
	int devfd, iommufd;
	uint64_t *t[3];

	while ((opt = getopt(argc, argv, "n:w:p:")) != -1) {
		if (opt == 'n')
			rounds = atoi(optarg);
		else if (opt == 'w')
			warmup = atoi(optarg);
		else if (opt == 'p')
			pasid = strtoul(optarg, NULL, 0);
		else
			return 2;
	}
	if (argc - optind != 2 || rounds < 1) {
		fprintf(stderr, "usage: pasid_attach [-n ROUNDS] [-w WARMUP] [-p PASID] LABEL BDF\n");
		return 2;
	}
	iommufd = pvp_iommufd_open();
	devfd = pvp_cdev_open(argv[optind + 1]);
	err = iommufd < 0 ? iommufd : devfd < 0 ? devfd : 0;
	if (!err)
		err = pvp_ioas_alloc(iommufd, &ioas[0]);
	if (!err)
		err = pvp_ioas_alloc(iommufd, &ioas[1]);
	if (!err)
		err = pvp_bind_iommufd(devfd, iommufd, &devid);
	if (!err)
		err = hwpt_alloc(iommufd, devid, ioas[0], &hwpt[0]);
	if (!err)
		err = hwpt_alloc(iommufd, devid, ioas[1], &hwpt[1]);
	if (!err)
		err = pvp_attach_pt(devfd, hwpt[0], NULL);
	if (err) {
		fprintf(stderr, "pasid_attach: %s: open for PASIDs: %s\n", argv[optind + 1],
			strerror(-err));
		return 1;
	}
	for (k = 0; k < 3; k++)
		t[k] = calloc(rounds, sizeof(uint64_t));
	if (!t[0] || !t[1] || !t[2]) {
		fprintf(stderr, "pasid_attach: %s\n", strerror(ENOMEM));
		return 1;
	}
	for (r = -warmup; r < rounds; r++) {
		uint64_t t0, t1, t2, t3;

		t0 = now();
		err = attach(devfd, pasid, hwpt[0]);
		t1 = now();
		if (!err)
			err = attach(devfd, pasid, hwpt[1]);
		t2 = now();
		if (!err)
			err = detach(devfd, pasid);
		t3 = now();
		if (err) {
			fprintf(stderr, "pasid_attach: %s: PASID %u round %d: %s\n", argv[optind + 1],
				pasid, r, strerror(err));
			return 1;
		}
		if (r >= 0) {
			t[0][r] = t1 - t0;
			t[1][r] = t2 - t1;
			t[2][r] = t3 - t2;
		}
	}
	for (k = 0; k < 3; k++) {
		uint64_t sum = 0;

		for (r = 0; r < rounds; r++)
			sum += t[k][r];
		qsort(t[k], rounds, sizeof(uint64_t), cmp);
		printf("pasid %s %s: median %llu ns, mean %llu ns over %d\n", ops[k], argv[optind],
		       (unsigned long long)t[k][rounds / 2], (unsigned long long)(sum / rounds), rounds);
	}
	close(devfd);
	close(iommufd);
	return 0;
}
