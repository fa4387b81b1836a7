control 'baseline-network-01' do
  impact 0.7
  title 'The instance routes no packets and accepts no redirects'
  describe kernel_parameter('net.ipv4.ip_forward') do
    its('value') { should eq 0 }
  end
  describe kernel_parameter('net.ipv4.conf.all.accept_redirects') do
    its('value') { should eq 0 }
  end
  describe kernel_parameter('net.ipv4.conf.all.send_redirects') do
    its('value') { should eq 0 }
  end
end

control 'baseline-network-02' do
  impact 1.0
  title 'No legacy remote-login services are installed'
  %w[telnet-server rsh-server tftp-server ypserv].each do |name|
    describe package(name) do
      it { should_not be_installed }
    end
  end
end
