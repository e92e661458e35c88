// SPDX-License-Identifier: GPL-2.0
/*
 * Config space accesses racing with resets on persona-vfio-pci.
 *
 * The device (PVP_BDF) is bound to persona-vfio-pci with a persona that has a 4-byte emulated
 * register at PVP_REG (hex; e.g. tests/personas/concurrency/edu-regs.toml at 0x60, reset
 * value PVP_RESET). Writer threads store uniform dwords (all four bytes equal), reader threads
 * read the register as one dword and as two words, and one thread issues VFIO_DEVICE_RESET in a
 * loop. Every value read must be uniform: anything else is a torn emulated value. The suite
 * checks the kernel log for lockdep reports afterwards.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "pvp_util.h"

#define WRITERS		2
#define READERS		2
#define ROUNDS		4000

struct shared {
	int devfd;
	uint64_t cfg;		/* offset of the config region */
	uint32_t reg;		/* the emulated register's config offset */
	uint32_t reset_value;
	atomic_int stop;
	atomic_long torn, reads, writes, resets, reset_errs, io_errs;
	uint32_t last_torn;
};

static bool uniform32(uint32_t v)
{
	return v == (v & 0xff) * 0x01010101u;
}

static void *writer(void *arg)
{
	struct shared *s = arg;
	uint32_t k = (uint32_t)(uintptr_t)&k;

	while (!atomic_load(&s->stop) && atomic_load(&s->writes) < ROUNDS * WRITERS) {
		uint32_t v;

		k = k * 1103515245u + 12345u;
		v = ((k >> 16) & 0xff) * 0x01010101u;
		if (pwrite(s->devfd, &v, 4, s->cfg + s->reg) != 4)
			atomic_fetch_add(&s->io_errs, 1);
		atomic_fetch_add(&s->writes, 1);
	}
	return NULL;
}

static void *reader(void *arg)
{
	struct shared *s = arg;

	while (!atomic_load(&s->stop) && atomic_load(&s->reads) < ROUNDS * READERS) {
		uint32_t v = 0;
		uint16_t w[2] = { 0, 0 };

		if (pread(s->devfd, &v, 4, s->cfg + s->reg) != 4)
			atomic_fetch_add(&s->io_errs, 1);
		else if (!uniform32(v)) {
			atomic_fetch_add(&s->torn, 1);
			s->last_torn = v;
		}
		/* A word is uniform too: two bytes written by one 4-byte write. */
		if (pread(s->devfd, &w[0], 2, s->cfg + s->reg) != 2 ||
		    pread(s->devfd, &w[1], 2, s->cfg + s->reg + 2) != 2)
			atomic_fetch_add(&s->io_errs, 1);
		else if ((w[0] & 0xff) != (w[0] >> 8) || (w[1] & 0xff) != (w[1] >> 8)) {
			atomic_fetch_add(&s->torn, 1);
			s->last_torn = w[0] | (uint32_t)w[1] << 16;
		}
		atomic_fetch_add(&s->reads, 1);
	}
	return NULL;
}

static void *resetter(void *arg)
{
	struct shared *s = arg;

	while (!atomic_load(&s->stop)) {
		if (ioctl(s->devfd, VFIO_DEVICE_RESET))
			atomic_fetch_add(&s->reset_errs, 1);
		else
			atomic_fetch_add(&s->resets, 1);
		usleep(2000);
	}
	return NULL;
}

FIXTURE(race) {
	struct pvp_dev dev;
	struct shared s;
	bool opened;
};

FIXTURE_SETUP(race)
{
	const char *bdf = pvp_env("PVP_BDF"), *reg = pvp_env("PVP_REG"), *rv = pvp_env("PVP_RESET");
	uint64_t size;

	if (!bdf || !reg || !rv)
		SKIP(return, "PVP_BDF, PVP_REG and PVP_RESET must be set");
	memset(&self->s, 0, sizeof(self->s));
	self->s.reg = strtoul(reg, NULL, 16);
	self->s.reset_value = strtoul(rv, NULL, 16);
	ASSERT_EQ(0, pvp_dev_open(bdf, &self->dev));
	self->opened = true;
	self->s.devfd = self->dev.devfd;
	ASSERT_EQ(0, pvp_config_size(self->dev.devfd, &self->s.cfg, &size));
	ASSERT_LE(self->s.reg + 4, size);
}

FIXTURE_TEARDOWN(race)
{
	if (self->opened)
		pvp_dev_close(&self->dev);
}

/* After open the register holds its reset value, and a write reads back. */
TEST_F(race, register_is_emulated)
{
	uint32_t v = 0, w = 0x3c3c3c3c;

	ASSERT_EQ(4, pread(self->s.devfd, &v, 4, self->s.cfg + self->s.reg));
	EXPECT_EQ(self->s.reset_value, v);
	ASSERT_EQ(4, pwrite(self->s.devfd, &w, 4, self->s.cfg + self->s.reg));
	ASSERT_EQ(4, pread(self->s.devfd, &v, 4, self->s.cfg + self->s.reg));
	EXPECT_EQ(w, v);
}

TEST_F(race, no_torn_values_under_resets)
{
	pthread_t w[WRITERS], r[READERS], z;
	int i;

	for (i = 0; i < WRITERS; i++)
		ASSERT_EQ(0, pthread_create(&w[i], NULL, writer, &self->s));
	for (i = 0; i < READERS; i++)
		ASSERT_EQ(0, pthread_create(&r[i], NULL, reader, &self->s));
	ASSERT_EQ(0, pthread_create(&z, NULL, resetter, &self->s));
	for (i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	for (i = 0; i < READERS; i++)
		pthread_join(r[i], NULL);
	atomic_store(&self->s.stop, 1);
	pthread_join(z, NULL);

	TH_LOG("%ld reads, %ld writes, %ld resets (%ld refused), %ld torn",
	       atomic_load(&self->s.reads), atomic_load(&self->s.writes),
	       atomic_load(&self->s.resets), atomic_load(&self->s.reset_errs),
	       atomic_load(&self->s.torn));
	EXPECT_EQ(0, atomic_load(&self->s.torn)) TH_LOG("last torn value %08x", self->s.last_torn);
	EXPECT_EQ(0, atomic_load(&self->s.io_errs));
	EXPECT_LT(0, atomic_load(&self->s.resets)) TH_LOG("no reset succeeded: nothing raced");
}

/* The last reset wins over earlier writes: the register is back at its reset value. */
TEST_F(race, reset_restores_register)
{
	uint32_t v = 0x77777777;

	ASSERT_EQ(4, pwrite(self->s.devfd, &v, 4, self->s.cfg + self->s.reg));
	if (ioctl(self->s.devfd, VFIO_DEVICE_RESET))
		SKIP(return, "VFIO_DEVICE_RESET: %s", strerror(errno));
	ASSERT_EQ(4, pread(self->s.devfd, &v, 4, self->s.cfg + self->s.reg));
	EXPECT_EQ(self->s.reset_value, v);
}

TEST_HARNESS_MAIN
