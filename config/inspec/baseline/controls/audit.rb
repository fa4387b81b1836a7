control 'baseline-audit-01' do
  impact 1.0
  title 'auditd is installed, enabled and running'
  describe package('audit') do
    it { should be_installed }
  end
  describe service('auditd') do
    it { should be_enabled }
    it { should be_running }
  end
end

control 'baseline-audit-02' do
  impact 0.5
  title 'Time is synchronised (audit records need a trustworthy clock)'
  describe service('chronyd') do
    it { should be_enabled }
    it { should be_running }
  end
end
