/*
 * pcap_floor: the floor of live capture's CPU cost (issue 19, bench L2).
 *
 * Opens an interface with libpcap exactly as pushcap does (whole packets, promiscuous, the
 * given kernel buffer, a 100 ms timeout) and only counts packets with pcap_dispatch: what the
 * kernel and libpcap cost before any tool does anything with a packet. It prints
 * "listening on IFACE" once capturing, and on SIGTERM/SIGINT the packets counted and libpcap's
 * own figures (after reading what the kernel still held):
 *     packets=N bytes=B ps_recv=R ps_drop=D ps_ifdrop=I
 *
 * Usage: pcap_floor IFACE [BUFFER_BYTES]
 */
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pcap_t *handle;
static volatile sig_atomic_t stopping;

struct counts {
    unsigned long long packets;
    unsigned long long bytes;
};

static void count_packet(u_char *user, const struct pcap_pkthdr *header, const u_char *data)
{
    struct counts *counts = (struct counts *)user;
    (void)data;
    counts->packets++;
    counts->bytes += header->caplen;
}

static void on_signal(int signo)
{
    (void)signo;
    stopping = 1;
    if (handle != NULL)
        pcap_breakloop(handle);
}

int main(int argc, char **argv)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    struct counts counts = {0, 0};
    struct pcap_stat stats;
    struct sigaction action;
    long buffer_bytes = 64L * 1024 * 1024;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s IFACE [BUFFER_BYTES]\n", argv[0]);
        return 2;
    }
    if (argc == 3)
        buffer_bytes = strtol(argv[2], NULL, 10);
    handle = pcap_create(argv[1], errbuf);
    if (handle == NULL) {
        fprintf(stderr, "pcap_create: %s\n", errbuf);
        return 1;
    }
    pcap_set_snaplen(handle, 262144);
    pcap_set_promisc(handle, 1);
    pcap_set_timeout(handle, 100);
    pcap_set_buffer_size(handle, (int)buffer_bytes);
    if (pcap_activate(handle) < 0) {
        fprintf(stderr, "pcap_activate: %s\n", pcap_geterr(handle));
        return 1;
    }
    memset(&action, 0, sizeof(action));
    action.sa_handler = on_signal;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    fprintf(stderr, "listening on %s\n", argv[1]);
    while (!stopping) {
        int got = pcap_dispatch(handle, -1, count_packet, (u_char *)&counts);
        if (got == PCAP_ERROR) {
            fprintf(stderr, "pcap_dispatch: %s\n", pcap_geterr(handle));
            break;
        }
    }
    /* Stopped: what the kernel already holds still counts. A partly filled block reaches user
     * space at the latest one timeout (100 ms) later, so read until two reads a timeout and a
     * half apart find nothing. */
    pcap_setnonblock(handle, 1, errbuf);
    for (int empty = 0; empty < 2;) {
        struct timespec pause = {0, 150 * 1000 * 1000};
        if (pcap_dispatch(handle, -1, count_packet, (u_char *)&counts) > 0) {
            empty = 0;
            continue;
        }
        empty++;
        nanosleep(&pause, NULL);
    }
    if (pcap_stats(handle, &stats) == 0)
        printf("packets=%llu bytes=%llu ps_recv=%u ps_drop=%u ps_ifdrop=%u\n", counts.packets,
               counts.bytes, stats.ps_recv, stats.ps_drop, stats.ps_ifdrop);
    else
        printf("packets=%llu bytes=%llu\n", counts.packets, counts.bytes);
    fflush(stdout);
    pcap_close(handle);
    return 0;
}
