/* C reference for vmm_proc.bench.exit_latency: the same real-mode guest, the same
 * KVM_RUN loop, no Python. Usage: exit_ref CODE.bin EXITS; prints "exits=N ns=T". */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE (1 << 20)
#define CODE_ADDR 0x1000

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s CODE.bin EXITS\n", argv[0]);
		return 2;
	}
	long exits = strtol(argv[2], NULL, 0);
	uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	int code = open(argv[1], O_RDONLY);
	if (code < 0 || read(code, mem + CODE_ADDR, MEM_SIZE - CODE_ADDR) <= 0)
		die("code");
	close(code);

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000) < 0)
		die("KVM_SET_TSS_ADDR");
	int cpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (cpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");

	struct kvm_sregs sregs;
	if (ioctl(cpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(cpu, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS");
	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE_ADDR;
	regs.rcx = exits;
	regs.rflags = 2;
	if (ioctl(cpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");

	long seen = 0;
	int64_t start = now_ns();
	for (;;) {
		if (ioctl(cpu, KVM_RUN, 0) < 0)
			die("KVM_RUN");
		if (run->exit_reason == KVM_EXIT_IO) {
			seen++;
			continue;
		}
		if (run->exit_reason == KVM_EXIT_HLT)
			break;
		fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
		return 1;
	}
	int64_t elapsed = now_ns() - start;
	printf("exits=%ld ns=%lld\n", seen, (long long)elapsed);
	return 0;
}
