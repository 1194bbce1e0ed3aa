// Packet-level TCP reference for nmoe-sim (benchmarks/fidelity): `flows` BulkSend transfers of
// `size` bytes each, all started at t = 0 across one PointToPoint link whose DataRate may change
// at given times (both directions together). Same setting as ns3_reference.csv (see README.md):
// PPP framing (2 bytes), MTU 1500, no loss, device queue of 100,000 packets, no qdisc, TcpCubic,
// initial window 10 segments of 1448 bytes, SACK and timestamps on, delayed ACK count 2.
//
// The sender application (FillSendApplication below) is BulkSend with its write size taken to the
// limit: each time the socket has room it writes exactly min(room, bytes left), so the send buffer
// is always topped up to the byte. That is what BulkSend does with SendSize = 1 (same packets, same
// times; checked), without one Send() call per byte. BulkSend's default 512-byte writes leave the
// buffer up to 511 bytes short whenever the send buffer bounds the window, and then the times
// differ from ns3_reference.csv; --app=bulk --sendsize=N runs the stock BulkSend for comparison.
//
// Output, one line per flow on stdout:
//   flow,connect_to_last_byte_ns,established_to_last_byte_ns,retx_segments,rto_events,
//   fast_recoveries,max_queue_pkts,at_steps
// times in nanoseconds (ns-3's time unit; connect() is at t = 0). max_queue_pkts: the largest
// backlog of the sender's device queue (shared by all flows). at_steps: for each rate step after
// the first, the flow's state when the rate changed: SS (cwnd < ssthresh: slow start), CA
// (congestion avoidance), or done (last byte already delivered), then ':' and the bytes
// delivered to the receiving application by then; steps separated by '|'.
// With --progress=f1,f2,... also one line "P,f,time_ns" per fraction f: when the bytes delivered
// to the receivers, all flows together, first reached f * flows * size.
//
// Written for ns-3 3.37 (Debian bookworm's libns3-dev).

#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"
#include "ns3/traffic-control-module.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

using namespace ns3;

namespace
{

// BulkSend with writes of min(free send-buffer space, bytes left): connect at start, write on
// connection and on every send callback, close after the last byte is written.
class FillSendApplication : public Application
{
  public:
    static TypeId GetTypeId()
    {
        static TypeId tid = TypeId("ns3::NmoeFillSendApplication")
                                .SetParent<Application>()
                                .SetGroupName("Applications")
                                .AddConstructor<FillSendApplication>();
        return tid;
    }

    void Setup(Address peer, uint64_t maxBytes, Callback<void, Ptr<Socket>> onSocket)
    {
        m_peer = peer;
        m_maxBytes = maxBytes;
        m_onSocket = onSocket;
    }

    Ptr<Socket> GetSocket() const
    {
        return m_socket;
    }

  private:
    void StartApplication() override
    {
        m_socket = Socket::CreateSocket(GetNode(), TcpSocketFactory::GetTypeId());
        NS_ABORT_MSG_IF(m_socket->Bind() == -1, "bind failed");
        if (!m_onSocket.IsNull())
        {
            m_onSocket(m_socket);
        }
        m_socket->Connect(m_peer);
        m_socket->ShutdownRecv();
        m_socket->SetConnectCallback(MakeCallback(&FillSendApplication::Connected, this),
                                     MakeCallback(&FillSendApplication::Failed, this));
        m_socket->SetSendCallback(MakeCallback(&FillSendApplication::Room, this));
    }

    void StopApplication() override
    {
        if (m_socket)
        {
            m_socket->Close();
            m_connected = false;
        }
    }

    void Connected(Ptr<Socket>)
    {
        m_connected = true;
        Write();
    }

    void Failed(Ptr<Socket>)
    {
        NS_FATAL_ERROR("connection failed");
    }

    void Room(Ptr<Socket>, uint32_t)
    {
        if (m_connected)
        {
            Write();
        }
    }

    void Write()
    {
        while (m_sent < m_maxBytes)
        {
            uint64_t room = m_socket->GetTxAvailable();
            if (room == 0)
            {
                break;
            }
            uint64_t n = std::min(room, m_maxBytes - m_sent);
            int actual = m_socket->Send(Create<Packet>(uint32_t(n)));
            NS_ABORT_MSG_IF(actual != int(n), "Send took " << actual << " of " << n);
            m_sent += n;
        }
        if (m_sent == m_maxBytes && m_connected)
        {
            m_socket->Close();
            m_connected = false;
        }
    }

    Address m_peer;
    uint64_t m_maxBytes = 0;
    uint64_t m_sent = 0;
    bool m_connected = false;
    Ptr<Socket> m_socket;
    Callback<void, Ptr<Socket>> m_onSocket;
};

struct FlowRecord
{
    uint64_t rxBytes = 0;
    Time lastByte = Time(-1);
    Time established = Time(-1);
    SequenceNumber32 highestTx{0};
    bool anyTx = false;
    uint32_t retxSegments = 0;
    uint32_t rtoEvents = 0;
    uint32_t fastRecoveries = 0;
    uint32_t cwnd = 0;
    uint32_t ssthresh = 0xffffffff;
    std::string atSteps;
};

std::vector<FlowRecord> g_flows;
uint64_t g_size = 0;
uint32_t g_maxQueue = 0;
uint64_t g_rxTotal = 0;
std::vector<double> g_progress;          // fractions of flows * size, increasing
std::vector<int64_t> g_progressNs;       // when each was reached

void
SinkRx(uint32_t flow, Ptr<const Packet> p, const Address&)
{
    FlowRecord& r = g_flows[flow];
    r.rxBytes += p->GetSize();
    g_rxTotal += p->GetSize();
    while (g_progressNs.size() < g_progress.size() &&
           double(g_rxTotal) >= g_progress[g_progressNs.size()] * double(g_size) * g_flows.size())
    {
        g_progressNs.push_back(Simulator::Now().GetNanoSeconds());
    }
    if (r.rxBytes >= g_size && r.lastByte.IsNegative())
    {
        r.lastByte = Simulator::Now();
    }
}

void
StateChange(uint32_t flow, TcpSocket::TcpStates_t, TcpSocket::TcpStates_t now)
{
    if (now == TcpSocket::ESTABLISHED && g_flows[flow].established.IsNegative())
    {
        g_flows[flow].established = Simulator::Now();
    }
}

void
CongStateChange(uint32_t flow,
                TcpSocketState::TcpCongState_t before,
                TcpSocketState::TcpCongState_t now)
{
    if (now == TcpSocketState::CA_LOSS && before != TcpSocketState::CA_LOSS)
    {
        g_flows[flow].rtoEvents++;
    }
    if (now == TcpSocketState::CA_RECOVERY && before != TcpSocketState::CA_RECOVERY)
    {
        g_flows[flow].fastRecoveries++;
    }
}

void
SocketTx(uint32_t flow, Ptr<const Packet> p, const TcpHeader& h, Ptr<const TcpSocketBase>)
{
    if (p->GetSize() == 0)
    {
        return; // pure ACK / SYN / FIN without data
    }
    FlowRecord& r = g_flows[flow];
    SequenceNumber32 end = h.GetSequenceNumber() + p->GetSize();
    if (r.anyTx && end <= r.highestTx)
    {
        r.retxSegments++;
    }
    else
    {
        r.highestTx = end;
        r.anyTx = true;
    }
}

void
CwndChange(uint32_t flow, uint32_t, uint32_t now)
{
    g_flows[flow].cwnd = now;
}

void
SsthreshChange(uint32_t flow, uint32_t, uint32_t now)
{
    g_flows[flow].ssthresh = now;
}

void
RecordStep()
{
    for (FlowRecord& r : g_flows)
    {
        std::ostringstream os;
        if (!r.atSteps.empty())
        {
            os << '|';
        }
        os << (!r.lastByte.IsNegative() ? "done" : (r.cwnd < r.ssthresh ? "SS" : "CA")) << ':'
           << r.rxBytes;
        r.atSteps += os.str();
    }
}

void
QueueLen(uint32_t, uint32_t now)
{
    if (now > g_maxQueue)
    {
        g_maxQueue = now;
    }
}

void
HookSocket(uint32_t i, Ptr<Socket> s)
{
    s->TraceConnectWithoutContext("State", MakeBoundCallback(&StateChange, i));
    s->TraceConnectWithoutContext("CongState", MakeBoundCallback(&CongStateChange, i));
    s->TraceConnectWithoutContext("Tx", MakeBoundCallback(&SocketTx, i));
    s->TraceConnectWithoutContext("CongestionWindow", MakeBoundCallback(&CwndChange, i));
    s->TraceConnectWithoutContext("SlowStartThreshold", MakeBoundCallback(&SsthreshChange, i));
}

// Stock BulkSend sockets exist once the applications have started (t = 0); hook them just after
// (the SYN at t = 0 is not seen by the Tx trace, which only counts data segments anyway).
void
HookBulkSockets(std::vector<Ptr<BulkSendApplication>> apps)
{
    for (uint32_t i = 0; i < apps.size(); i++)
    {
        Ptr<Socket> s = apps[i]->GetSocket();
        NS_ABORT_MSG_IF(!s, "BulkSend socket not created yet");
        HookSocket(i, s);
    }
}

void
SetRate(NetDeviceContainer devs, double mbps)
{
    for (uint32_t i = 0; i < devs.GetN(); i++)
    {
        devs.Get(i)->SetAttribute("DataRate", DataRateValue(DataRate(uint64_t(mbps * 1e6 + 0.5))));
    }
}

// "0:10;0.5:1;2:10" -> [(0,10),(0.5,1),(2,10)]
std::vector<std::pair<double, double>>
ParseSteps(const std::string& s)
{
    std::vector<std::pair<double, double>> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ';'))
    {
        if (item.empty())
        {
            continue;
        }
        auto colon = item.find(':');
        NS_ABORT_MSG_IF(colon == std::string::npos, "bad rate step " << item);
        out.emplace_back(std::stod(item.substr(0, colon)), std::stod(item.substr(colon + 1)));
    }
    return out;
}

} // namespace

NS_OBJECT_ENSURE_REGISTERED(FillSendApplication);

int
main(int argc, char* argv[])
{
    double rateMbps = 10;
    std::string steps;
    double delayMs = 10;
    uint64_t size = 1000000;
    uint32_t flows = 1;
    uint32_t sndBuf = 131072;
    uint32_t rcvBuf = 131072;
    uint32_t segment = 1448;
    uint32_t initialCwnd = 10;
    uint32_t queuePackets = 100000;
    std::string app = "fill";
    uint32_t sendSize = 512; // BulkSend's default write size (only with --app=bulk)
    double stopS = 100000;
    std::string progress;

    CommandLine cmd(__FILE__);
    cmd.AddValue("rate", "link rate at t = 0 (Mbps), when no --steps", rateMbps);
    cmd.AddValue("steps", "rate steps t:mbps;t:mbps;... (first at t = 0)", steps);
    cmd.AddValue("delay", "one-way propagation delay (ms)", delayMs);
    cmd.AddValue("size", "bytes per flow", size);
    cmd.AddValue("flows", "number of parallel flows", flows);
    cmd.AddValue("sndbuf", "TCP send buffer (bytes)", sndBuf);
    cmd.AddValue("rcvbuf", "TCP receive buffer (bytes)", rcvBuf);
    cmd.AddValue("segment", "TCP segment size (bytes)", segment);
    cmd.AddValue("iw", "initial window (segments)", initialCwnd);
    cmd.AddValue("queue", "device queue (packets)", queuePackets);
    cmd.AddValue("app", "sender: fill (write all the buffer takes) or bulk (stock BulkSend)", app);
    cmd.AddValue("sendsize", "BulkSend write size (bytes), with --app=bulk", sendSize);
    cmd.AddValue("stop", "simulation stop time (s)", stopS);
    cmd.AddValue("progress", "report when these fractions of all bytes were delivered", progress);
    cmd.Parse(argc, argv);

    std::vector<std::pair<double, double>> rateSteps;
    if (steps.empty())
    {
        rateSteps.emplace_back(0.0, rateMbps);
    }
    else
    {
        rateSteps = ParseSteps(steps);
        NS_ABORT_MSG_IF(rateSteps.empty() || rateSteps[0].first != 0.0,
                        "the first rate step must be at t = 0");
    }

    g_size = size;
    {
        std::stringstream ps(progress);
        std::string item;
        while (std::getline(ps, item, ','))
        {
            if (!item.empty())
            {
                g_progress.push_back(std::stod(item));
            }
        }
        NS_ABORT_MSG_IF(!std::is_sorted(g_progress.begin(), g_progress.end()),
                        "--progress fractions must increase");
    }
    g_flows.assign(flows, FlowRecord());

    Config::SetDefault("ns3::TcpL4Protocol::SocketType", TypeIdValue(TcpCubic::GetTypeId()));
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(segment));
    Config::SetDefault("ns3::TcpSocket::InitialCwnd", UintegerValue(initialCwnd));
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(sndBuf));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(rcvBuf));
    Config::SetDefault("ns3::TcpSocket::DelAckCount", UintegerValue(2));
    Config::SetDefault("ns3::TcpSocketBase::Sack", BooleanValue(true));
    Config::SetDefault("ns3::TcpSocketBase::Timestamp", BooleanValue(true));

    NodeContainer nodes;
    nodes.Create(2);

    PointToPointHelper p2p;
    p2p.SetDeviceAttribute("DataRate",
                           DataRateValue(DataRate(uint64_t(rateSteps[0].second * 1e6 + 0.5))));
    p2p.SetDeviceAttribute("Mtu", UintegerValue(1500));
    p2p.SetChannelAttribute("Delay", TimeValue(MicroSeconds(int64_t(delayMs * 1000 + 0.5))));
    p2p.SetQueue("ns3::DropTailQueue<Packet>",
                 "MaxSize",
                 QueueSizeValue(QueueSize(QueueSizeUnit::PACKETS, queuePackets)));
    NetDeviceContainer devs = p2p.Install(nodes);

    InternetStackHelper stack;
    stack.Install(nodes);
    Ipv4AddressHelper addr;
    addr.SetBase("10.1.1.0", "255.255.255.0");
    Ipv4InterfaceContainer ifs = addr.Assign(devs);
    // Ipv4AddressHelper::Assign installs a default queue disc; the setting has none.
    TrafficControlHelper tch;
    tch.Uninstall(devs);

    devs.Get(0)->GetObject<PointToPointNetDevice>()->GetQueue()->TraceConnectWithoutContext(
        "PacketsInQueue",
        MakeCallback(&QueueLen));

    std::vector<Ptr<BulkSendApplication>> senders;
    for (uint32_t i = 0; i < flows; i++)
    {
        uint16_t port = 5000 + i;
        PacketSinkHelper sink("ns3::TcpSocketFactory",
                              InetSocketAddress(Ipv4Address::GetAny(), port));
        ApplicationContainer sa = sink.Install(nodes.Get(1));
        sa.Start(Seconds(0));
        sa.Get(0)->TraceConnectWithoutContext("Rx", MakeBoundCallback(&SinkRx, i));

        Address peer = InetSocketAddress(ifs.GetAddress(1), port);
        if (app == "bulk")
        {
            BulkSendHelper bulk("ns3::TcpSocketFactory", peer);
            bulk.SetAttribute("MaxBytes", UintegerValue(size));
            bulk.SetAttribute("SendSize", UintegerValue(sendSize));
            ApplicationContainer ba = bulk.Install(nodes.Get(0));
            ba.Start(Seconds(0));
            senders.push_back(DynamicCast<BulkSendApplication>(ba.Get(0)));
        }
        else
        {
            NS_ABORT_MSG_IF(app != "fill", "--app must be fill or bulk");
            Ptr<FillSendApplication> fill = CreateObject<FillSendApplication>();
            fill->Setup(peer, size, MakeBoundCallback(&HookSocket, i));
            nodes.Get(0)->AddApplication(fill);
            fill->SetStartTime(Seconds(0));
        }
    }
    if (!senders.empty())
    {
        Simulator::Schedule(NanoSeconds(1), &HookBulkSockets, senders);
    }

    for (size_t k = 1; k < rateSteps.size(); k++)
    {
        Time at = NanoSeconds(int64_t(rateSteps[k].first * 1e9 + 0.5));
        Simulator::Schedule(at, &RecordStep);
        Simulator::Schedule(at, &SetRate, devs, rateSteps[k].second);
    }

    Simulator::Stop(Seconds(stopS));
    Simulator::Run();

    for (uint32_t i = 0; i < flows; i++)
    {
        const FlowRecord& r = g_flows[i];
        NS_ABORT_MSG_IF(r.lastByte.IsNegative(), "flow " << i << " did not finish");
        std::printf("%u,%lld,%lld,%u,%u,%u,%u,%s\n",
                    i,
                    (long long)r.lastByte.GetNanoSeconds(),
                    (long long)(r.lastByte - r.established).GetNanoSeconds(),
                    r.retxSegments,
                    r.rtoEvents,
                    r.fastRecoveries,
                    g_maxQueue,
                    r.atSteps.c_str());
    }
    for (size_t k = 0; k < g_progressNs.size(); k++)
    {
        std::printf("P,%g,%lld\n", g_progress[k], (long long)g_progressNs[k]);
    }
    Simulator::Destroy();
    return 0;
}
