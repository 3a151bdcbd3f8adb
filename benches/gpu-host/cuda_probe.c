/* Loads the CUDA driver (libcuda.so.1) as any CUDA program does, creates a
 * context on each visible device and allocates and frees 256 MiB there. */
#include <dlfcn.h>
#include <stdio.h>
#include <stddef.h>
typedef int CUresult; typedef int CUdevice; typedef void *CUcontext; typedef unsigned long long CUdeviceptr;
int main(void) {
    void *h = dlopen("libcuda.so.1", RTLD_NOW);
    if (!h) { printf("cuda: dlopen failed: %s\n", dlerror()); return 1; }
    CUresult (*cuInit)(unsigned) = dlsym(h, "cuInit");
    CUresult (*cuDeviceGetCount)(int *) = dlsym(h, "cuDeviceGetCount");
    CUresult (*cuDeviceGet)(CUdevice *, int) = dlsym(h, "cuDeviceGet");
    CUresult (*cuDeviceGetName)(char *, int, CUdevice) = dlsym(h, "cuDeviceGetName");
    CUresult (*cuCtxCreate)(CUcontext *, unsigned, CUdevice) = dlsym(h, "cuCtxCreate_v2");
    CUresult (*cuMemAlloc)(CUdeviceptr *, size_t) = dlsym(h, "cuMemAlloc_v2");
    CUresult (*cuMemFree)(CUdeviceptr) = dlsym(h, "cuMemFree_v2");
    int r = cuInit(0);
    if (r) { printf("cuda: cuInit failed: %d\n", r); return 1; }
    int n = 0; cuDeviceGetCount(&n);
    printf("cuda: %d device(s)\n", n);
    for (int i = 0; i < n; i++) {
        CUdevice d; char name[128]; CUcontext c; CUdeviceptr p;
        cuDeviceGet(&d, i); cuDeviceGetName(name, sizeof name, d);
        r = cuCtxCreate(&c, 0, d);
        if (r) { printf("cuda: context on %s failed: %d\n", name, r); return 1; }
        r = cuMemAlloc(&p, 256u << 20);
        printf("cuda: device %d %s: alloc 256MiB -> %d\n", i, name, r);
        if (!r) cuMemFree(p);
    }
    printf("cuda: ok\n");
    return 0;
}
